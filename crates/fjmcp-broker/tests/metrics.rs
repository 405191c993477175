//! `/metrics` on the real binary after a real OAuth flow and a few calls:
//! every family is there with plausible values, nothing identifies a user, a
//! client or a token, `promtool check metrics` accepts it, and the public
//! listener does not serve it.

mod support;

use serde_json::json;
use support::mcp::{call_modern, post, session_of, stack_with, text_of, tool_call};
use support::oauth::{CLAUDE_CALLBACK, Stack};

/// The metrics listener's address, from the broker's `serving /metrics` log line.
fn metrics_address(stack: &Stack) -> String {
    stack
        .broker
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "serving /metrics")
        .and_then(|line| line["addr"].as_str().map(str::to_string))
        .expect("the broker logs where it serves /metrics")
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_cover_the_broker_after_a_real_flow() {
    let stack = stack_with(&[("FJMCP_METRICS_LISTEN", "127.0.0.1:0")]).await;
    let client = stack.register("metrics", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for("alice", &client).await;
    let token = tokens["access_token"].as_str().unwrap();
    let session = session_of(&stack, token, "2025-11-25").await;
    for n in 0..3 {
        let echo = post(
            &stack,
            Some(token),
            &[("mcp-session-id", &session)],
            tool_call(json!(n), "echo", json!({"text": "m"})),
        )
        .await;
        assert_eq!(text_of(&echo.json()), "m");
    }
    let modern = call_modern(
        &stack,
        token,
        json!(9),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "m"}}),
    )
    .await;
    assert_eq!(modern.status, 200, "{}", modern.text);
    let refreshed = stack
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ])
        .await;
    assert_eq!(refreshed.0, 200);
    // The child crashes once (a stop by reason), and comes back.
    let crash = post(
        &stack,
        Some(token),
        &[("mcp-session-id", &session)],
        tool_call(json!("c"), "crash", json!({})),
    )
    .await;
    assert_eq!(crash.json()["error"]["code"], -32603);

    // The crash is recorded when the child's exit is reaped, just after the
    // answer: scrape until it is there.
    let url = format!("http://{}/metrics", metrics_address(&stack));
    let crash_seen = r#"fjmcp_children_stopped_total{reason="crash"} 1"#;
    let mut text = String::new();
    for _ in 0..200 {
        let scrape = reqwest::get(&url).await.unwrap();
        assert_eq!(scrape.status(), 200);
        assert!(
            scrape.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        text = scrape.text().await.unwrap();
        if text.contains(crash_seen) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // HTTP, by route and status class, with durations.
    assert!(
        sample(
            &text,
            r#"fjmcp_http_requests_total{route="/mcp",status_class="2xx"}"#
        ) >= 5.0
    );
    assert!(
        sample(
            &text,
            r#"fjmcp_http_requests_total{route="/oauth/token",status_class="2xx"}"#
        ) >= 2.0
    );
    assert!(
        sample(
            &text,
            r#"fjmcp_http_request_duration_seconds_count{route="/mcp"}"#
        ) >= 5.0
    );
    // /mcp by era and method class.
    assert!(
        sample(
            &text,
            r#"fjmcp_mcp_requests_total{era="2025",method_class="tools"}"#
        ) >= 4.0
    );
    assert_eq!(
        sample(
            &text,
            r#"fjmcp_mcp_requests_total{era="2025",method_class="initialize"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"fjmcp_mcp_requests_total{era="2026-07-28",method_class="tools"}"#
        ),
        1.0
    );
    // OAuth events.
    for (event, at_least) in [
        ("client_registered", 1.0),
        ("authorization_started", 1.0),
        ("consent_given", 1.0),
        ("authorization_completed", 1.0),
        ("tokens_issued", 2.0),
        ("refreshed", 1.0),
    ] {
        let series = format!(r#"fjmcp_oauth_events_total{{event="{event}"}}"#);
        assert!(sample(&text, &series) >= at_least, "{event}");
    }
    // Forgejo checks of the user's token, with their latency.
    assert!(
        sample(
            &text,
            r#"fjmcp_upstream_requests_total{call="check",outcome="ok"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            r#"fjmcp_upstream_request_duration_seconds_count{call="check"}"#
        ) >= 1.0
    );
    // Children.
    assert!(sample(&text, "fjmcp_children_started_total") >= 1.0);
    assert_eq!(
        sample(&text, r#"fjmcp_children_stopped_total{reason="crash"}"#),
        1.0
    );
    assert!(sample(&text, "fjmcp_child_start_duration_seconds_count") >= 1.0);
    assert!(sample(&text, "fjmcp_child_in_flight_requests_count") >= 4.0);
    assert!(text.contains("fjmcp_children "), "{text}");
    // Sessions (counted in the store at the scrape) and store errors.
    assert_eq!(sample(&text, "fjmcp_sessions"), 1.0);
    assert_eq!(sample(&text, "fjmcp_store_errors_total"), 0.0);

    // Nothing that identifies a user, a client or a token.
    for secret in [
        "alice",
        client.as_str(),
        token,
        tokens["refresh_token"].as_str().unwrap(),
        session.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // Not on the public listener.
    let public = stack.http.get(stack.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);

    promtool_accepts(&text);
}

/// `promtool check metrics` (Debian's `prometheus` package) on the scrape.
/// CI installs it and sets FJMCP_REQUIRE_PROMTOOL; elsewhere a missing
/// promtool is reported, not failed.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut promtool = match spawned {
        Ok(promtool) => promtool,
        Err(e) => {
            #[allow(clippy::disallowed_methods)]
            let required = std::env::var_os("FJMCP_REQUIRE_PROMTOOL").is_some();
            assert!(!required, "promtool is required here but cannot run: {e}");
            eprintln!(
                "promtool not found ({e}): install Debian's `prometheus` package to check the format"
            );
            return;
        }
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
