//! The `forgejo-double` binary: starts on a free port, announces its URL, serves, and stops
//! cleanly on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_forgejo-double");

#[tokio::test]
async fn the_binary_announces_its_url_and_serves_discovery() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            "demo",
            "--client-secret",
            "demo-secret",
            "--redirect-uri",
            "http://127.0.0.1:8080/callback",
            "--user",
            "alice:alice-password",
            "--user",
            "bob:bob-password",
            "--auto-login",
            "bob",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready line in time")
        .expect("stdout readable")
        .expect("a ready line");
    let url = line
        .strip_prefix("forgejo-double listening on ")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "the real port is printed: {url}");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let doc: Value = http
        .get(format!("{url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{url}/"));
    assert_eq!(
        doc["token_endpoint"],
        format!("{url}/login/oauth/access_token")
    );

    // The flags took effect: the app is registered and auto-login signs bob in.
    let response = http
        .get(
            url::Url::parse_with_params(
                &format!("{url}/login/oauth/authorize"),
                [
                    ("client_id", "demo"),
                    ("redirect_uri", "http://127.0.0.1:8080/callback"),
                    ("response_type", "code"),
                    ("state", "s"),
                ],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    let tokens: Value = http
        .get(format!("{url}/_double/tokens/bob"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["access_tokens"], serde_json::json!([]));

    let pid = child.id().expect("still running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_binary_refuses_a_non_loopback_address() {
    let output = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
