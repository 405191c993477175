//! The security hardening of issue 12, item by item, against the real broker
//! binary (and, for the pieces that are about processes, real processes):
//! consent that cannot be ridden, limits on anonymous endpoints, children and
//! broker that cannot read each other, and the smaller items.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use serde_json::{Value, json};
use support::broker::Broker;
use support::mcp::{initialize, post, session_of, token_of};
use support::oauth::{Attempt, CLAUDE_CALLBACK, Landing, Stack};
use support::wait::{REACTION, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A safety net for waits that must end by themselves; never the expected time.
const NEVER: Duration = Duration::from_secs(20);

async fn refresh(stack: &Stack, client: &str, token: &str) -> (u16, Value) {
    stack
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ])
        .await
}

/// Reads until the peer closes; what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    String::from_utf8_lossy(&received).into_owned()
}

/// Serves a client ID metadata document on 127.0.0.1 and returns its URL.
async fn serve_metadata_document(name: &str, redirect_uris: &[&str]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/client.json", listener.local_addr().unwrap());
    let document = json!({
        "client_id": url,
        "client_name": name,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
    });
    let app = axum::Router::new().route(
        "/client.json",
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

// Item 1: an approval is not reused for redirects whose owner nothing proves.

#[tokio::test]
async fn an_earlier_approval_is_not_reused_for_a_redirect_to_this_computer() {
    let stack = Stack::start(&[]).await;
    let app = "cursor://anysphere.cursor-mcp/oauth/callback";
    let client = stack
        .register(
            "Editor",
            &[CLAUDE_CALLBACK, "http://127.0.0.1/callback", app],
        )
        .await;
    stack
        .code_for("alice", &Attempt::new(&client, CLAUDE_CALLBACK))
        .await;
    // An https redirect of an approved client needs no new page.
    let again = Attempt::new(&client, CLAUDE_CALLBACK);
    let landing = stack
        .browse_as("alice", &stack.authorize_url(&again, &[]))
        .await;
    assert!(
        matches!(&landing, Landing::Client(q) if q.contains_key("code")),
        "{landing:?}"
    );
    // A local program listening on a loopback port, or an app that claimed the
    // scheme, could have started these: the user is asked every time.
    for redirect in ["http://127.0.0.1:41234/callback", app] {
        for round in 0..2 {
            let attempt = Attempt::new(&client, redirect);
            let Landing::Consent {
                ticket,
                cookie,
                html,
            } = stack
                .browse_as("alice", &stack.authorize_url(&attempt, &[]))
                .await
            else {
                panic!("{redirect} (round {round}): the consent page must be shown again")
            };
            assert!(html.contains("a program on this computer"), "{html}");
            let Landing::Client(query) = stack.decide(&ticket, &cookie, "approve").await else {
                panic!("approval redirects")
            };
            assert!(query.contains_key("code"), "{query:?}");
        }
    }
}

// Item 2: limits on anonymous endpoints.

#[tokio::test]
async fn anonymous_endpoints_are_rate_limited_per_client_and_in_all() {
    let stack = Stack::start(&[
        ("FJMCP_RATE_LIMIT_PER_IP", "3/min"),
        ("FJMCP_RATE_LIMIT_GLOBAL", "6/min"),
    ])
    .await;
    let register = |forwarded_for: Option<&'static str>| {
        let mut request = stack.http.post(stack.url("/oauth/register")).json(&json!({
            "client_name": "flood",
            "redirect_uris": [CLAUDE_CALLBACK],
            "token_endpoint_auth_method": "none",
        }));
        if let Some(client) = forwarded_for {
            request = request.header("x-forwarded-for", client);
        }
        async move { request.send().await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(register(None).await.status(), 201);
    }
    let limited = register(None).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");

    // Behind the reverse proxy (loopback is trusted by default) each client
    // named in X-Forwarded-For has its own budget...
    for _ in 0..3 {
        assert_eq!(register(Some("203.0.113.9")).await.status(), 201);
    }
    // ...and everyone together has one: 6 registrations went through.
    assert_eq!(register(Some("198.51.100.4")).await.status(), 429);

    // The token endpoint and the browser's authorize request have budgets of
    // their own, and the browser gets a page.
    for _ in 0..3 {
        let (status, _) = stack.token(&[("grant_type", "refresh_token")]).await;
        assert_ne!(status, 429);
    }
    let response = stack
        .http
        .post(stack.url("/oauth/token"))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    for _ in 0..3 {
        let page = stack
            .http
            .get(stack.url("/oauth/authorize"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400);
    }
    let page = stack
        .http
        .get(stack.url("/oauth/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn state_and_stored_client_metadata_are_capped() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let long_state = "s".repeat(1025);
    match stack
        .browse_as(
            "alice",
            &stack.authorize_url(&attempt, &[("state", Some(&long_state))]),
        )
        .await
    {
        Landing::Page(400, html) => assert!(html.contains("state"), "{html}"),
        other => panic!("an overlong state must be refused: {other:?}"),
    }
    // A kilobyte is fine.
    let state = "s".repeat(1024);
    assert!(matches!(
        stack
            .browse_as(
                "alice",
                &stack.authorize_url(&attempt, &[("state", Some(&state))])
            )
            .await,
        Landing::Consent { .. }
    ));

    let big = stack
        .http
        .post(stack.url("/oauth/register"))
        .json(&json!({
            "client_name": "big",
            "redirect_uris": [CLAUDE_CALLBACK],
            "x_padding": "p".repeat(20 * 1024),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 400);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let broker = Broker::start(&[("FJMCP_HEADER_READ_TIMEOUT", "1s")]).await;
    let address = broker.url.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // The rest of the headers never comes; the broker must close the connection.
    let closed = tokio::time::timeout(NEVER, read_to_close(&mut slow)).await;
    assert!(closed.is_ok(), "a slow client holds its connection forever");
    // Complete requests are served as before.
    let health = reqwest::get(format!("{}/healthz", broker.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_and_a_closed_one_frees_its_place() {
    let broker = Broker::start(&[("FJMCP_MAX_CONNECTIONS", "2")]).await;
    let address = broker.url.trim_start_matches("http://").to_string();
    let first = TcpStream::connect(&address).await.unwrap();
    let _second = TcpStream::connect(&address).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut third = TcpStream::connect(&address).await.unwrap();
    third.write_all(request).await.unwrap();
    let answer = tokio::time::timeout(NEVER, read_to_close(&mut third))
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );

    drop(first);
    let mut served = String::new();
    for _ in 0..200 {
        let mut next = TcpStream::connect(&address).await.unwrap();
        next.write_all(request).await.unwrap();
        served = tokio::time::timeout(NEVER, read_to_close(&mut next))
            .await
            .expect("an answer");
        if served.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

// Item 3: the broker's memory and environment are not readable by its own user.

#[tokio::test]
async fn the_broker_process_cannot_be_read_by_processes_of_its_own_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: starting the broker as another user needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let listener = support::broker::listener();
    let (_reachable, binary) = support::broker::copy_for_another_user();
    let mut command = support::broker::command_of(&binary, dir.path());
    command
        .arg("serve")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            listener.try_clone().unwrap(),
        )));
    let mut broker = command.spawn().unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let mut up = false;
    for _ in 0..500 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "the broker did not start as uid {NOBODY}");
    let pid = broker.id().unwrap();
    // Another process of the same user (a compromised child, say) tries to read
    // the broker's environment, which holds its Forgejo client secret.
    use std::os::unix::process::CommandExt;
    let read = std::process::Command::new("cat")
        .arg(format!("/proc/{pid}/environ"))
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let environ = String::from_utf8_lossy(&read.stdout);
    assert!(
        !environ.contains("forgejo-client-secret-value"),
        "same-user processes can read the broker's environment"
    );
    assert!(!read.status.success());
    let _ = broker.kill().await;
}

// Item 4: no open redirector.

#[tokio::test]
async fn errors_go_to_a_redirect_uri_only_once_some_user_approved_the_client() {
    let stack = Stack::start(&[]).await;
    let anywhere = "https://phish.example/landing";
    let client = stack.register("Anonymous", &[anywhere]).await;
    let attempt = Attempt::new(&client, anywhere);
    let broken = [("response_type", Some("token"))];
    match stack
        .browse_as("alice", &stack.authorize_url(&attempt, &broken))
        .await
    {
        Landing::Page(400, html) => assert!(html.contains("unsupported_response_type"), "{html}"),
        other => panic!("nobody approved this client: no redirect, got {other:?}"),
    }
    stack.code_for("alice", &attempt).await;
    match stack
        .browse_as("alice", &stack.authorize_url(&attempt, &broken))
        .await
    {
        Landing::Client(query) => {
            assert_eq!(query["error"], "unsupported_response_type");
            assert_eq!(query["state"], attempt.state);
        }
        other => panic!("an approved client gets its errors: {other:?}"),
    }
}

#[tokio::test]
async fn a_metadata_document_client_vouches_for_redirects_on_its_own_host() {
    let stack = Stack::start(&[("FJMCP_CLIENT_METADATA_ALLOW_LOOPBACK_HTTP", "true")]).await;
    // The document is served from 127.0.0.1 and names a redirect on 127.0.0.1:
    // whoever published it chose the redirect, so errors may go there.
    let client_id = serve_metadata_document("Local Tool", &["http://127.0.0.1/callback"]).await;
    let attempt = Attempt::new(&client_id, "http://127.0.0.1:40001/callback");
    match stack
        .browse_as(
            "alice",
            &stack.authorize_url(&attempt, &[("response_type", Some("token"))]),
        )
        .await
    {
        Landing::Client(query) => assert_eq!(query["error"], "unsupported_response_type"),
        other => panic!("{other:?}"),
    }
    // Its consent page shows the name from the document and who published it.
    let Landing::Consent { html, .. } = stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    else {
        panic!("consent")
    };
    assert!(
        html.contains("Allow Local Tool to use Forgejo as alice?"),
        "{html}"
    );
    assert!(html.contains("published by <b>127.0.0.1</b>"), "{html}");
    assert!(!html.contains("calls itself"), "{html}");
}

// Item 5: a replay inside the refresh grace window cannot split the family.

#[tokio::test]
async fn a_refresh_token_replayed_inside_the_grace_window_cannot_keep_a_chain_of_its_own() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for("alice", &client).await;
    let stolen = tokens["refresh_token"].as_str().unwrap();
    let (status, real) = refresh(&stack, &client, stolen).await;
    assert_eq!(status, 200, "{real}");
    // The thief replays the old token a moment later, inside the grace window.
    let (status, thief) = refresh(&stack, &client, stolen).await;
    assert_eq!(status, 200, "{thief}");
    // The real client goes on with its successor.
    let (status, next) = refresh(&stack, &client, real["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{next}");
    // The thief's sibling is refused, and the grant ends for both.
    let (status, body) = refresh(&stack, &client, thief["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, _) = refresh(&stack, &client, next["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the grant was revoked");
}

// Item 6: only the client with its verifier can spend (or burn) a code.

#[tokio::test]
async fn holding_a_code_is_not_enough_to_burn_it() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("c", &[CLAUDE_CALLBACK]).await;
    let other = stack.register("other", &[CLAUDE_CALLBACK]).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let code = stack.code_for("alice", &attempt).await;
    let without_verifier = Attempt {
        verifier: fjmcp_broker::crypto::mint_secret(""),
        ..Attempt::new(&client, CLAUDE_CALLBACK)
    };
    let other_client = Attempt {
        verifier: attempt.verifier.clone(),
        ..Attempt::new(&other, CLAUDE_CALLBACK)
    };
    for intruder in [&without_verifier, &other_client] {
        let (status, body) = stack.exchange(intruder, &code).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    let (status, tokens) = stack.exchange(&attempt, &code).await;
    assert_eq!(status, 200, "the code survived: {tokens}");
    let store = stack.open_store().await;
    let access = fjmcp_broker::crypto::hash_secret(tokens["access_token"].as_str().unwrap());
    // A replay by another client revokes nothing...
    let (status, _) = stack.exchange(&other_client, &code).await;
    assert_eq!(status, 400);
    assert!(
        store
            .authenticate_access_token(&access)
            .await
            .unwrap()
            .is_some()
    );
    // ...a replay by the client itself, with its verifier, revokes what the code gave.
    let (status, _) = stack.exchange(&attempt, &code).await;
    assert_eq!(status, 400);
    assert!(
        store
            .authenticate_access_token(&access)
            .await
            .unwrap()
            .is_none()
    );
}

// Item 7: metadata fetch failures tell the caller nothing internal.

#[tokio::test]
async fn a_metadata_document_failure_shows_no_addresses_or_connection_details() {
    let stack = Stack::start(&[]).await;
    // `localhost` resolves to a loopback address, which the fetcher refuses.
    let client_id = "https://localhost:9/oauth/client.json";
    let attempt = Attempt::new(client_id, "http://localhost/callback");
    match stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    {
        Landing::Page(400, html) => {
            assert!(
                !html.contains("127.0.0.1") && !html.contains("::1"),
                "{html}"
            );
            assert!(!html.contains("resolves"), "{html}");
            assert!(html.contains("could not be used"), "{html}");
        }
        other => panic!("{other:?}"),
    }
    // The operator still learns why.
    assert!(
        eventually(REACTION, || stack.broker.log_text().contains("resolves to")).await,
        "the details are logged"
    );
}

// Item 8: the children's directory.

#[tokio::test]
async fn the_childrens_directory_is_made_private_and_unpredictable_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().display().to_string();
    let mut broker = Broker::start(&[("TMPDIR", &tmpdir)]).await;
    let made: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fjmcp-broker-")
        })
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let pid = broker.child.id().unwrap();
    assert_ne!(
        made[0].file_name().unwrap().to_string_lossy(),
        format!("fjmcp-broker-{pid}"),
        "a name derived from the pid can be prepared by another local user"
    );
    let meta = std::fs::symlink_metadata(&made[0]).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    broker.terminate();
    broker.child.wait().await.unwrap();
    assert!(!made[0].exists(), "removed at exit");

    // A parent everyone may write to without the sticky bit is refused.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = support::broker::command(dir.path())
        .arg("serve")
        .env("FJMCP_LISTEN", "127.0.0.1:0")
        .env("TMPDIR", open.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not sticky"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Item 9: streams.

#[tokio::test]
async fn long_lived_streams_are_capped_per_grant_and_per_user_and_closing_one_frees_it() {
    let child = support::children::fixture_child().display().to_string();
    let stack = Stack::start(&[
        ("FJMCP_CHILD_COMMAND", &child),
        ("FJMCP_MAX_STREAMS_PER_GRANT", "2"),
        ("FJMCP_MAX_STREAMS_PER_USER", "3"),
    ])
    .await;
    let open = |token: String, session: String| {
        let (http, url) = (stack.http.clone(), stack.url("/mcp"));
        async move {
            http.get(url)
                .bearer_auth(token)
                .header("mcp-session-id", session)
                .header("accept", "text/event-stream")
                .send()
                .await
                .unwrap()
        }
    };
    let token = token_of(&stack, "alice").await;
    let session = session_of(&stack, &token, "2025-11-25").await;
    let first = open(token.clone(), session.clone()).await;
    assert_eq!(first.status(), 200);
    let second = open(token.clone(), session.clone()).await;
    assert_eq!(second.status(), 200);
    let refused = open(token.clone(), session.clone()).await;
    assert_eq!(refused.status(), 503, "per grant");
    assert!(refused.headers().contains_key("retry-after"));

    // Another grant (another client) of the same user: the user's cap counts all.
    let other = token_of(&stack, "alice").await;
    let other_session = session_of(&stack, &other, "2025-11-25").await;
    let third = open(other.clone(), other_session.clone()).await;
    assert_eq!(third.status(), 200);
    let refused = open(other.clone(), other_session.clone()).await;
    assert_eq!(refused.status(), 503, "per user");

    // A stream the client closes gives its place back.
    drop(first);
    let mut reopened = 0;
    for _ in 0..200 {
        let response = open(token.clone(), session.clone()).await;
        reopened = response.status().as_u16();
        if reopened == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reopened, 200);
}

#[tokio::test]
async fn concurrent_initializes_never_exceed_the_session_cap() {
    let child = support::children::fixture_child().display().to_string();
    let stack = Stack::start(&[
        ("FJMCP_CHILD_COMMAND", &child),
        ("FJMCP_MAX_SESSIONS_PER_USER", "3"),
    ])
    .await;
    let token = token_of(&stack, "alice").await;
    // The child is started, so the initializes below race on the session cap alone.
    session_of(&stack, &token, "2025-11-25").await;
    let attempts = (0..12).map(|_| post(&stack, Some(&token), &[], initialize("2025-11-25")));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|reply| reply.status)
        .collect();
    let created = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(created, 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 10);
}

// Item 10: the consent page.

#[tokio::test]
async fn the_consent_page_puts_deny_first_and_says_who_vouches_for_the_name() {
    let stack = Stack::start(&[]).await;
    let client = stack.register("Claude", &[CLAUDE_CALLBACK]).await;
    let attempt = Attempt::new(&client, CLAUDE_CALLBACK);
    let Landing::Consent { html, .. } = stack
        .browse_as("alice", &stack.authorize_url(&attempt, &[]))
        .await
    else {
        panic!("consent")
    };
    let deny = html.find("value=\"deny\"").expect("a Deny button");
    let approve = html.find("value=\"approve\"").expect("an Approve button");
    assert!(
        deny < approve,
        "Deny comes first, so a double-click from a swapped window lands on it"
    );
    assert!(
        html.contains("calls itself"),
        "a registered name is self-declared"
    );
    assert!(
        html.contains("class=\"primary arm\""),
        "Approve takes no clicks in the page's first moment"
    );
}

// Item 11: the smaller items.

#[tokio::test]
async fn the_sqlite_database_is_created_readable_by_its_owner_only() {
    let mut broker = Broker::start(&[]).await;
    for name in ["broker.db", "broker.db-wal", "broker.db-shm"] {
        let path = broker.dir.join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o077, 0, "{name}");
        } else {
            assert_ne!(name, "broker.db", "the database exists");
        }
    }
    broker.terminate();
    broker.child.wait().await.unwrap();
}

#[tokio::test]
async fn every_route_but_the_health_probes_checks_the_host() {
    let stack = Stack::start(&[]).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource",
        "/oauth/authorize",
        "/no/such/path",
    ] {
        let response = stack
            .http
            .get(stack.url(path))
            .header("host", "attacker.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    let register = stack
        .http
        .post(stack.url("/oauth/register"))
        .header("host", "attacker.example")
        .json(&json!({"redirect_uris": [CLAUDE_CALLBACK]}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 403);
    for path in [
        "/healthz",
        "/readyz",
        "/.well-known/oauth-authorization-server",
    ] {
        let host = if path.starts_with("/.well-known") {
            stack.issuer.trim_start_matches("http://").to_string()
        } else {
            "10.0.0.7:8080".to_string()
        };
        let response = stack
            .http
            .get(stack.url(path))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn the_token_endpoint_enforces_the_registered_grant_types() {
    let stack = Stack::start(&[]).await;
    let response = stack
        .http
        .post(stack.url("/oauth/register"))
        .json(&json!({
            "client_name": "code only",
            "redirect_uris": [CLAUDE_CALLBACK],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let registered: Value = response.json().await.unwrap();
    let client = registered["client_id"].as_str().unwrap();
    let attempt = Attempt::new(client, CLAUDE_CALLBACK);
    let code = stack.code_for("alice", &attempt).await;
    let (status, tokens) = stack.exchange(&attempt, &code).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(
        tokens.get("refresh_token").is_none(),
        "a client without the refresh grant gets no refresh token: {tokens}"
    );
    // Nor can it refresh with another client's token of the same user.
    let refreshing = stack.register("refreshing", &[CLAUDE_CALLBACK]).await;
    let other = stack.tokens_for("alice", &refreshing).await;
    let (status, body) = refresh(&stack, client, other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    // A client that did not say which grant types it uses gets both.
    let (status, _) = refresh(
        &stack,
        &refreshing,
        other["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}
