//! The real `fjmcp-broker` binary: configuration errors, health endpoints,
//! error bodies, secrets kept out of output, and shutdown.

mod support;

use std::time::Duration;
use tokio::time::Instant;

use support::broker::{Broker, command};

async fn output_of(args: &[&str], env: &[(&str, &str)], remove: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(args);
    for name in remove {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("the broker exits")
        .expect("runs")
}

#[tokio::test]
async fn version_needs_no_configuration() {
    let out = std::process::Command::new(support::broker::BINARY)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("fjmcp-broker {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[tokio::test]
async fn missing_settings_exit_2_naming_each_one() {
    let out = output_of(
        &["serve"],
        &[("FJMCP_LISTEN", "not-an-address")],
        &["FJMCP_PUBLIC_URL", "FJMCP_FORGEJO_CLIENT_ID"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FJMCP_PUBLIC_URL"), "{stderr}");
    assert!(stderr.contains("FJMCP_FORGEJO_CLIENT_ID"), "{stderr}");
    assert!(
        stderr.contains("listen (from environment FJMCP_LISTEN)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("listening"),
        "no port may be bound: {stderr}"
    );
}

#[tokio::test]
async fn a_sealing_key_readable_by_others_exits_2() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "11".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = output_of(
        &["serve"],
        &[("FJMCP_SEALING_KEY_FILE", key.to_str().unwrap())],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[tokio::test]
async fn an_unreachable_store_exits_1_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    fjmcp_broker::crypto::SealingKey::generate(&key).unwrap();
    let out = output_of(
        &["serve"],
        &[
            ("FJMCP_STORE", "postgres://postgres@127.0.0.1:1/nothing"),
            ("FJMCP_SEALING_KEY_FILE", key.to_str().unwrap()),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the store"), "{stderr}");
}

#[tokio::test]
async fn check_config_prints_the_effective_configuration_with_secrets_redacted() {
    let out = output_of(
        &[
            "check-config",
            "--skip-child-check",
            "--listen",
            "127.0.0.1:9999",
        ],
        &[("FJMCP_STORE", "sqlite:/tmp/x.db")],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("listen = \"127.0.0.1:9999\"  # flag --listen"),
        "{stdout}"
    );
    assert!(
        stdout.contains("forgejo_client_secret = \"<redacted>\""),
        "{stdout}"
    );
    assert!(stdout.contains("child_command = \"forgejo-mcp --transport stdio\"  # default"));
    assert!(!stdout.contains("forgejo-client-secret-value"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("forgejo-client-secret-value"));
}

#[tokio::test]
async fn serves_health_and_readiness_then_stops_on_sigterm_within_two_seconds() {
    let mut broker = Broker::start(&[]).await;
    let http = reqwest::Client::new();

    let health = http
        .get(format!("{}/healthz", broker.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["git_revision"].as_str().is_some_and(|r| !r.is_empty()));

    let ready = http
        .get(format!("{}/readyz", broker.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["store"]["ok"], true);
    assert_eq!(body["checks"]["store"]["backend"], "sqlite");

    // The sealing key was generated beside the database, private.
    use std::os::unix::fs::PermissionsExt;
    let key = broker.dir.join("broker.db.sealing-key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Keep an idle keep-alive connection open: it must not hold shutdown up.
    let started = Instant::now();
    broker.terminate();
    let status = tokio::time::timeout(Duration::from_secs(2), broker.child.wait())
        .await
        .unwrap_or_else(|_| panic!("not stopped after {:?}", started.elapsed()))
        .unwrap();
    assert!(status.success(), "{status:?}");
    drop(http);
}

#[tokio::test]
async fn malformed_requests_get_json_errors_and_secrets_are_never_logged() {
    let mut broker = Broker::start(&[
        ("FJMCP_LOG_LEVEL", "trace"),
        ("FJMCP_MAX_BODY_SIZE", "4KiB"),
    ])
    .await;
    let http = reqwest::Client::new();

    let missing = http
        .get(format!("{}/no/such/path?code=abc", broker.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/json");
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");

    let wrong_method = http
        .post(format!("{}/healthz", broker.url))
        .header("authorization", "Bearer SECRET-BEARER-VALUE")
        .header("cookie", "session=SECRET-COOKIE-VALUE")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["content-type"], "application/json");
    assert!(wrong_method.headers().contains_key("allow"));
    let body: serde_json::Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");

    let too_large = http
        .post(format!("{}/healthz", broker.url))
        .body(vec![b'x'; 8 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let body: serde_json::Value = too_large.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");

    let client_id = http
        .get(format!("{}/healthz", broker.url))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(client_id.headers()["x-request-id"], "client-chosen-id");

    broker.terminate();
    broker.child.wait().await.unwrap();
    let logs = broker.log_text();
    assert!(
        logs.contains("/no/such/path"),
        "requests are logged: {logs}"
    );
    assert!(!logs.contains("code=abc"), "query strings are not logged");
    assert!(!logs.contains("SECRET-BEARER-VALUE"), "{logs}");
    assert!(!logs.contains("SECRET-COOKIE-VALUE"), "{logs}");
    assert!(!logs.contains("forgejo-client-secret-value"), "{logs}");

    // One JSON line per response, carrying its request span once.
    let response_line = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["span"]["request_id"] == "client-chosen-id" && line.get("status").is_some()
        })
        .unwrap_or_else(|| panic!("no response line for the request id: {logs}"));
    assert_eq!(response_line["status"], 200);
    assert_eq!(response_line["span"]["path"], "/healthz");
    assert_eq!(response_line["span"]["method"], "GET");
    assert!(
        response_line.get("spans").is_none(),
        "the span is not repeated: {response_line}"
    );
}

#[tokio::test]
async fn state_survives_a_restart_on_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Broker::start_in(dir.path(), &[]).await;
    first.terminate();
    first.child.wait().await.unwrap();
    let key = std::fs::read(dir.path().join("broker.db.sealing-key")).unwrap();
    let mut second = Broker::start_in(dir.path(), &[]).await;
    assert_eq!(
        std::fs::read(dir.path().join("broker.db.sealing-key")).unwrap(),
        key,
        "the key is reused, not regenerated"
    );
    let ready = reqwest::get(format!("{}/readyz", second.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    second.terminate();
    second.child.wait().await.unwrap();
}
