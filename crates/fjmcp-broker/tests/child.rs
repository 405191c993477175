//! One supervised stdio child (`fjmcp_broker::children`), with real processes only: the
//! workspace's `fixture-child` MCP server, and tiny misbehaving children written as shell
//! scripts.
//!
//! `fixture-child` is a binary of another workspace crate, and Cargo builds a dependency's
//! binaries only for its own tests, so it is looked up next to this test's executable
//! (`target/<profile>/fixture-child`). `cargo test --workspace` (and so `./scripts/test` and CI)
//! builds it; with `cargo test -p fjmcp-broker` alone run `cargo build -p fixture-child` first,
//! or the tests say so.
//!
//! Every test holds a shared lock; the test that counts file descriptors and zombies over 200
//! spawn/stop cycles holds it exclusively, so no other test's processes blur its numbers.

mod support;

use std::path::Path;
use std::time::Duration;

use fjmcp_broker::children::{CallError, Child, ChildError, ChildSpec, ExitInfo, ResourceLimits};
use serde_json::{Value, json};
use support::children::fixture_child;
use support::mcp::{text_of, tool_call};
use support::wait::eventually;
use tokio::sync::{RwLock, mpsc};
use tokio::time::Instant;

/// The broker binary, which is also the resource-limit wrapper.
const BROKER: &str = env!("CARGO_BIN_EXE_fjmcp-broker");

/// Taken shared by every test, exclusively by the leak test.
static PROCESSES: RwLock<()> = RwLock::const_new(());

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fjmcp_broker=debug".into()),
        )
        .try_init();
}

fn env_for(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), dir.display().to_string()),
        ("FJMCP_TEST_MARKER".into(), "1".into()),
    ]
}

fn spec_for(program_and_args: Vec<String>, dir: &Path) -> ChildSpec {
    let mut spec = ChildSpec::new(program_and_args, env_for(dir), dir.to_path_buf(), "test");
    spec.handshake_timeout = Duration::from_secs(20);
    spec.stop_grace = Duration::from_millis(500);
    spec
}

fn fixture_spec(dir: &Path, flags: &[&str]) -> ChildSpec {
    let mut args = vec![fixture_child().display().to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    spec_for(args, dir)
}

/// Shell functions the script children share. `reply_init LINE NAME [EXTRA]` answers an
/// `initialize` line with the id it carries; `id_of LINE` extracts a numeric id.
const PRELUDE: &str = r#"
id_of() { printf '%s\n' "$1" | sed -n 's/.*"id":\([0-9]*\).*/\1/p'; }
reply_init() {
  printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"%s","version":"0"}%s}}\n' "$(id_of "$1")" "$2" "$3"
}
"#;

/// A child that is `/bin/sh` running `body` (after [`PRELUDE`]) from a file in `dir`. The
/// script is run by the shell rather than executed itself, so a concurrent fork in another
/// test cannot make exec fail with "text file busy".
fn script_spec(dir: &Path, body: &str) -> ChildSpec {
    let path = dir.join("child.sh");
    std::fs::write(&path, format!("{PRELUDE}\n{body}")).unwrap();
    spec_for(vec!["/bin/sh".into(), path.display().to_string()], dir)
}

const LONG: Duration = Duration::from_secs(20);

/// Whether `pid` is gone (or only a zombie, which is its parent's business, not ours).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process in state Z (exited, not reaped).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may contain spaces, so split after the last ')'.
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if state == Some("Z") && ppid == Some(me.as_str()) {
            zombies.push(pid);
        }
    }
    zombies
}

#[tokio::test]
async fn handshake_caches_the_initialize_result() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    // Noise on stdout before the first message is logged and dropped, not fatal.
    let child = Child::spawn(fixture_spec(
        dir.path(),
        &["--noise-on-stdout", "--startup-delay-ms", "50"],
    ))
    .await
    .unwrap();
    let init = child.initialize_result();
    assert_eq!(init["serverInfo"]["name"], json!("fjmcp-fixture-child"));
    assert_eq!(init["protocolVersion"], json!("2025-11-25"));
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert!(child.is_alive());
    assert!(child.pid().is_some());
    assert_eq!(child.in_flight(), 0);

    let response = child
        .call(
            tool_call(json!(9), "echo", json!({"text": "hi"})),
            None,
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(response["id"], json!(9));
    assert_eq!(text_of(&response), "hi");

    let exit = child.stop().await;
    assert_eq!(
        exit,
        ExitInfo {
            code: Some(0),
            signal: None
        },
        "the fixture exits 0 on stdin EOF"
    );
    assert!(!child.is_alive());
    assert_eq!(child.pid(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_with_colliding_ids_each_get_their_own_answer() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let child = child.clone();
        // Half use the number 1, half the string "1": both must come back exactly.
        let id = if i % 2 == 0 { json!(1) } else { json!("1") };
        tasks.spawn(async move {
            let text = format!("caller {i}");
            let response = child
                .call(
                    tool_call(id.clone(), "echo", json!({"text": text})),
                    None,
                    LONG,
                )
                .await
                .unwrap();
            assert_eq!(response["id"], id, "caller {i}");
            assert_eq!(text_of(&response), text);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(child.in_flight(), 0);
    child.stop().await;
}

#[tokio::test]
async fn progress_reaches_only_the_caller_that_owns_the_token() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let with_token = |id: Value, token: Value| {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {
                "name": "test_tool_with_progress",
                "arguments": {},
                "_meta": {"progressToken": token},
            },
        })
    };
    let (a_tx, mut a_rx) = mpsc::channel(16);
    let (b_tx, mut b_rx) = mpsc::channel(16);
    let (c_tx, mut c_rx) = mpsc::channel(16);
    let (a, b, c) = tokio::join!(
        child.call(with_token(json!(1), json!("tok")), Some(a_tx), LONG),
        child.call(with_token(json!(1), json!("tok")), Some(b_tx), LONG),
        child.call(with_token(json!("x"), json!(5)), Some(c_tx), LONG),
    );
    for response in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert!(response["result"].is_object(), "{response}");
    }
    for (rx, token) in [
        (&mut a_rx, json!("tok")),
        (&mut b_rx, json!("tok")),
        (&mut c_rx, json!(5)),
    ] {
        let mut progress = Vec::new();
        while let Ok(event) = rx.try_recv() {
            assert_eq!(event["method"], json!("notifications/progress"));
            assert_eq!(event["params"]["progressToken"], token, "{event}");
            progress.push(event["params"]["progress"].as_u64().unwrap());
        }
        assert_eq!(
            progress,
            [0, 50, 100],
            "each caller gets exactly its own three"
        );
    }
    child.stop().await;
}

#[tokio::test]
async fn a_dropped_call_is_cancelled_and_the_child_serves_the_next_one() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let call = child.call(
        tool_call(json!(1), "sleep", json!({"ms": 30_000})),
        None,
        LONG,
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err(),
        "the sleep is still running when its caller goes away"
    );
    assert_eq!(child.in_flight(), 0);
    let started = Instant::now();
    let response = child
        .call(
            tool_call(json!(1), "echo", json!({"text": "next"})),
            None,
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(text_of(&response), "next");
    assert!(started.elapsed() < Duration::from_secs(10));
    child.stop().await;
}

#[tokio::test]
async fn cancellation_is_sent_for_dropped_and_timed_out_calls() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    // Records everything it receives; answers only initialize.
    let child = Child::spawn(script_spec(
        dir.path(),
        r#"
while IFS= read -r line; do
  printf '%s\n' "$line" >> received.log
  case "$line" in
    *'"method":"initialize"'*) reply_init "$line" recorder ;;
  esac
done
"#,
    ))
    .await
    .unwrap();
    let log = dir.path().join("received.log");
    let received = || -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    let call = child.call(tool_call(json!("mine"), "anything", json!({})), None, LONG);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    let timed_out = child
        .call(
            tool_call(json!(7), "anything", json!({})),
            None,
            Duration::from_millis(200),
        )
        .await;
    assert_eq!(timed_out, Err(CallError::Timeout));
    assert_eq!(child.in_flight(), 0);

    assert!(
        eventually(LONG, || received().len() >= 6).await,
        "received: {:?}",
        received()
    );
    let messages = received();
    let methods: Vec<&str> = messages
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/call",
            "notifications/cancelled",
            "tools/call",
            "notifications/cancelled",
        ]
    );
    assert_eq!(
        messages[0]["params"]["protocolVersion"],
        json!("2025-11-25")
    );
    assert_eq!(messages[0]["params"]["capabilities"], json!({}));
    assert_eq!(
        messages[0]["params"]["clientInfo"]["name"],
        json!("fjmcp-broker")
    );
    // The child saw child-side ids, never the callers' own.
    let (first, second) = (&messages[2]["id"], &messages[4]["id"]);
    assert!(
        first.is_u64() && second.is_u64() && first != second,
        "{first} {second}"
    );
    assert_eq!(messages[3]["params"]["requestId"], *first);
    assert_eq!(
        messages[3]["params"]["reason"],
        json!("the caller went away")
    );
    assert_eq!(messages[5]["params"]["requestId"], *second);
    assert_eq!(messages[5]["params"]["reason"], json!("request timed out"));
    child.stop().await;
}

#[tokio::test]
async fn a_call_times_out_and_the_next_call_works() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let result = child
        .call(
            tool_call(json!(1), "sleep", json!({"ms": 10_000})),
            None,
            Duration::from_millis(200),
        )
        .await;
    assert_eq!(result, Err(CallError::Timeout));
    let response = child
        .call(
            tool_call(json!(2), "echo", json!({"text": "ok"})),
            None,
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(text_of(&response), "ok");
    child.stop().await;
}

#[tokio::test]
async fn a_crash_fails_in_flight_calls_promptly_and_later_ones_at_once() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let started = Instant::now();
    let (sleeping, crashing) = tokio::join!(
        child.call(
            tool_call(json!(1), "sleep", json!({"ms": 30_000})),
            None,
            LONG
        ),
        async {
            // The sleep was queued first (the pipe keeps order) once it is in flight.
            assert!(eventually(LONG, || child.in_flight() == 1).await);
            child
                .call(tool_call(json!(2), "crash", json!({})), None, LONG)
                .await
        },
    );
    assert_eq!(sleeping, Err(CallError::Exited));
    assert_eq!(crashing, Err(CallError::Exited));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not after the sleep's 30 s"
    );
    assert_eq!(
        child.exited().await,
        ExitInfo {
            code: Some(3),
            signal: None
        }
    );
    assert!(!child.is_alive());
    assert_eq!(
        child
            .call(
                tool_call(json!(3), "echo", json!({"text": "x"})),
                None,
                LONG
            )
            .await,
        Err(CallError::Exited)
    );
    assert_eq!(
        child
            .notify(json!({"jsonrpc": "2.0", "method": "notifications/x"}))
            .await,
        Err(CallError::Exited)
    );
    assert_eq!(child.in_flight(), 0);
    child.stop().await;
}

#[tokio::test]
async fn the_child_gets_exactly_the_given_environment() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    // The test process has many more variables (cargo sets several); none may leak.
    let direct = fixture_spec(dir.path(), &[]);
    let mut limited = fixture_spec(dir.path(), &[]);
    limited.limits = ResourceLimits {
        open_files: Some(256),
        wrapper: Some(BROKER.into()),
        ..ResourceLimits::default()
    };
    for spec in [direct, limited] {
        let child = Child::spawn(spec).await.unwrap();
        let response = child
            .call(tool_call(json!(1), "env_names", json!({})), None, LONG)
            .await
            .unwrap();
        assert_eq!(text_of(&response), "FJMCP_TEST_MARKER\nHOME\nPATH\nTMPDIR");
        child.stop().await;
    }
}

#[tokio::test]
async fn list_changed_notifications_are_broadcast() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let mut notifications = child.notifications();
    child
        .call(
            tool_call(json!(1), "trigger_list_changed", json!({})),
            None,
            LONG,
        )
        .await
        .unwrap();
    let mut methods = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(LONG, notifications.recv())
            .await
            .unwrap()
            .unwrap();
        methods.push(n["method"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        methods,
        [
            "notifications/tools/list_changed",
            "notifications/resources/list_changed",
            "notifications/prompts/list_changed"
        ]
    );
    child.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_idempotent_and_safe_concurrently() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let mut stops = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let child = child.clone();
        stops.spawn(async move { child.stop().await });
    }
    while let Some(exit) = stops.join_next().await {
        assert_eq!(
            exit.unwrap(),
            ExitInfo {
                code: Some(0),
                signal: None
            }
        );
    }
    assert_eq!(
        child.stop().await,
        ExitInfo {
            code: Some(0),
            signal: None
        }
    );
    assert_eq!(
        child.exited().await,
        ExitInfo {
            code: Some(0),
            signal: None
        }
    );
    let after = child
        .call(
            tool_call(json!(1), "echo", json!({"text": "x"})),
            None,
            LONG,
        )
        .await;
    assert!(
        matches!(after, Err(CallError::Exited | CallError::Closed)),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = script_spec(
        dir.path(),
        r#"
trap '' TERM
IFS= read -r line
reply_init "$line" stubborn
while :; do sleep 1; done
"#,
    );
    spec.stop_grace = Duration::from_millis(300);
    let child = Child::spawn(spec).await.unwrap();
    let started = Instant::now();
    let exit = child.stop().await;
    assert_eq!(exit.signal, Some(9), "{exit}");
    // Stdin closed, grace; SIGTERM, grace; then SIGKILL.
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn stop_kills_what_the_child_forked() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(script_spec(
        dir.path(),
        r#"
sleep 1000 &
echo $! > grandchild.pid
IFS= read -r line
reply_init "$line" forker
while IFS= read -r line; do :; done
"#,
    ))
    .await
    .unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!process_gone(grandchild), "the grandchild runs");
    // The script exits on stdin EOF; its grandchild keeps the stdout pipe open, so only the
    // group kill after the exit ends it.
    let exit = child.stop().await;
    assert_eq!(exit.code, Some(0), "{exit}");
    assert!(
        eventually(Duration::from_secs(5), || process_gone(grandchild)).await,
        "grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn a_child_dying_in_the_handshake_fails_to_start_with_its_stderr() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..30 {
        body.push_str(&format!("echo 'log line {i}' >&2\n"));
    }
    body.push_str("echo 'fatal: cannot reach Forgejo' >&2\nexit 1\n");
    let error = Child::spawn(script_spec(dir.path(), &body))
        .await
        .unwrap_err();
    let ChildError::StartFailed {
        reason,
        stderr_tail,
    } = error
    else {
        panic!("{error:?}");
    };
    assert!(reason.contains("exit status 1"), "{reason}");
    assert_eq!(stderr_tail.len(), 20, "a bounded tail: {stderr_tail:?}");
    assert_eq!(stderr_tail.last().unwrap(), "fatal: cannot reach Forgejo");
    assert_eq!(stderr_tail[0], "log line 11");
}

#[tokio::test]
async fn a_child_that_never_answers_initialize_fails_to_start() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = fixture_spec(dir.path(), &["--ignore-initialize"]);
    spec.handshake_timeout = Duration::from_millis(300);
    let error = Child::spawn(spec).await.unwrap_err();
    assert!(
        matches!(&error, ChildError::StartFailed { reason, .. } if reason.contains("no answer to initialize")),
        "{error:?}"
    );

    let spec = spec_for(vec!["/nonexistent/forgejo-mcp".into()], dir.path());
    assert!(matches!(
        Child::spawn(spec).await,
        Err(ChildError::Spawn(_))
    ));
    let spec = spec_for(vec![], dir.path());
    assert!(matches!(
        Child::spawn(spec).await,
        Err(ChildError::Spawn(_))
    ));
}

#[tokio::test]
async fn an_initialize_error_fails_to_start() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let error = Child::spawn(script_spec(
        dir.path(),
        r#"
IFS= read -r line
printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"unsupported"}}\n' "$(id_of "$line")"
while IFS= read -r line; do :; done
"#,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ChildError::StartFailed { reason, .. } if reason.contains("unsupported")),
        "{error:?}"
    );
}

#[tokio::test]
async fn requests_from_the_child_get_method_not_found() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(script_spec(
        dir.path(),
        r#"
IFS= read -r line
reply_init "$line" asker
while IFS= read -r line; do
  case "$line" in
    *'"method":"tools/call"'*)
      printf '%s\n' '{"jsonrpc":"2.0","id":"srv-1","method":"sampling/createMessage","params":{}}'
      IFS= read -r answer
      printf '{"jsonrpc":"2.0","id":%s,"result":{"answer":%s}}\n' "$(id_of "$line")" "$answer" ;;
  esac
done
"#,
    ))
    .await
    .unwrap();
    let response = child
        .call(tool_call(json!("q"), "ask", json!({})), None, LONG)
        .await
        .unwrap();
    let answer = &response["result"]["answer"];
    assert_eq!(answer["id"], json!("srv-1"), "{response}");
    assert_eq!(answer["error"]["code"], json!(-32601), "{response}");
    assert_eq!(response["id"], json!("q"));
    child.stop().await;
}

#[tokio::test]
async fn garbage_and_over_long_lines_are_dropped_without_harm() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    // Before each real answer: text, a JSON array, an answer with an unknown id, and an
    // over-long line that would be a valid answer with the right id if it were read.
    let mut spec = script_spec(
        dir.path(),
        r#"
pad=$(head -c 100000 /dev/zero | tr '\0' x)
noise() {
  echo 'this is not JSON'
  echo '[1,2]'
  echo '{"jsonrpc":"2.0","id":999999,"result":{"wrong":true}}'
  printf '{"jsonrpc":"2.0","id":%s,"result":{"wrong":"%s"}}\n' "$1" "$pad"
}
IFS= read -r line
noise "$(id_of "$line")"
reply_init "$line" noisy ',"x-unknown":{"kept":[1,"two"]}'
while IFS= read -r line; do
  case "$line" in
    *'"method":"tools/call"'*)
      id=$(id_of "$line")
      noise "$id"
      printf '{"jsonrpc":"2.0","id":%s,"result":{"right":true}}\n' "$id" ;;
  esac
done
"#,
    );
    spec.max_line_bytes = 64 * 1024;
    let child = Child::spawn(spec).await.unwrap();
    let init = child.initialize_result();
    assert_eq!(init["serverInfo"]["name"], json!("noisy"));
    assert_eq!(
        init["x-unknown"],
        json!({"kept": [1, "two"]}),
        "unknown fields survive"
    );
    assert!(init.get("wrong").is_none());
    for id in [json!(1), json!("two")] {
        let response = child
            .call(tool_call(id.clone(), "t", json!({})), None, LONG)
            .await
            .unwrap();
        assert_eq!(
            response,
            json!({"jsonrpc": "2.0", "id": id, "result": {"right": true}})
        );
    }
    assert!(child.is_alive());
    child.stop().await;
}

#[tokio::test]
async fn resource_limits_are_in_place_before_the_child_reads_its_first_message() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
IFS= read -r line
reply_init "$line" limited ",\"nofile\":\"$(ulimit -n)\",\"as_kib\":\"$(ulimit -v)\",\"cpu\":\"$(ulimit -t)\""
while IFS= read -r line; do :; done
"#;
    let mut spec = script_spec(dir.path(), body);
    spec.limits = ResourceLimits {
        address_space_bytes: Some(2 << 30),
        open_files: Some(64),
        cpu_seconds: Some(100),
        processes: None,
        wrapper: Some(BROKER.into()),
    };
    let child = Child::spawn(spec).await.unwrap();
    let init = child.initialize_result();
    assert_eq!(init["nofile"], json!("64"), "{init}");
    assert_eq!(
        init["as_kib"],
        json!((2u64 << 30 >> 10).to_string()),
        "{init}"
    );
    assert_eq!(init["cpu"], json!("100"), "{init}");
    child.stop().await;

    // Without limits the child keeps the broker's.
    let child = Child::spawn(script_spec(dir.path(), body)).await.unwrap();
    assert_ne!(child.initialize_result()["nofile"], json!("64"));
    child.stop().await;
}

#[tokio::test]
async fn a_child_has_its_own_home_and_tmpdir_inside_its_private_directory() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    // The spec's environment names the broker's HOME (as an allow-listed variable would);
    // the child must get its own all the same.
    let body = r#"
IFS= read -r line
echo private > "$TMPDIR/scratch"
reply_init "$line" isolated ",\"home\":\"$HOME\",\"tmp\":\"$TMPDIR\""
while IFS= read -r line; do :; done
"#;
    let mut spec = script_spec(dir.path(), body);
    spec.env.push(("TMPDIR".into(), "/tmp".into()));
    let child = Child::spawn(spec).await.unwrap();
    let init = child.initialize_result().clone();
    child.stop().await;
    let home = dir.path().join("home");
    let tmp = dir.path().join("tmp");
    assert_eq!(init["home"], json!(home.display().to_string()), "{init}");
    assert_eq!(init["tmp"], json!(tmp.display().to_string()), "{init}");
    use std::os::unix::fs::PermissionsExt;
    for private in [&home, &tmp] {
        let mode = std::fs::symlink_metadata(private)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{}", private.display());
    }
    assert_eq!(
        std::fs::read_to_string(tmp.join("scratch")).unwrap(),
        "private\n"
    );

    // A symlink planted where HOME goes is refused, not followed.
    let planted = tempfile::tempdir().unwrap();
    std::fs::remove_dir(&home).unwrap();
    std::os::unix::fs::symlink(planted.path(), &home).unwrap();
    assert!(matches!(
        Child::spawn(script_spec(dir.path(), body)).await,
        Err(ChildError::Spawn(_))
    ));
}

#[tokio::test]
async fn a_child_can_run_as_another_user_who_owns_its_directory() {
    init_logs();
    let _shared = PROCESSES.read().await;
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
IFS= read -r line
key=$(cat "$BROKER_SECRET_FILE" 2>/dev/null | tr -dc 'A-Za-z-')
nproc=$(awk '/^Max processes/ {print $3}' /proc/self/limits)
reply_init "$line" unprivileged ",\"uid\":\"$(id -u)\",\"gid\":\"$(id -g)\",\"groups\":\"$(id -G)\",\"nproc\":\"$nproc\",\"broker_key\":\"$key\""
while IFS= read -r line; do :; done
"#;
    // A file only the broker's user may read, like the sealing key.
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("sealing-key");
    std::fs::write(&secret, "KEY-MATERIAL").unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut spec = script_spec(dir.path(), body);
    spec.env
        .push(("BROKER_SECRET_FILE".into(), secret.display().to_string()));
    spec.run_as = Some(fjmcp_broker::config::UnixUser {
        uid: 65534,
        gid: 65534,
    });
    // The wrapper is run as the other user: a copy they can reach.
    let (_reachable, wrapper) = support::broker::copy_for_another_user();
    spec.limits = ResourceLimits {
        processes: Some(300),
        wrapper: Some(wrapper.clone()),
        ..ResourceLimits::default()
    };
    let child = Child::spawn(spec).await.unwrap();
    let init = child.initialize_result().clone();
    child.stop().await;
    assert_eq!(init["uid"], json!("65534"), "{init}");
    assert_eq!(init["gid"], json!("65534"), "{init}");
    assert_eq!(
        init["groups"],
        json!("65534"),
        "no supplementary groups: {init}"
    );
    assert_eq!(init["nproc"], json!("300"), "{init}");
    let read = init["broker_key"].as_str().unwrap();
    assert!(
        !read.contains("KEY-MATERIAL"),
        "the child read the broker's key"
    );
    for owned in [
        dir.path().to_path_buf(),
        dir.path().join("home"),
        dir.path().join("tmp"),
    ] {
        assert_eq!(
            std::fs::metadata(&owned).unwrap().uid(),
            65534,
            "{}",
            owned.display()
        );
    }

    // Another user's limits are set by the wrapper, which reports a program it
    // cannot run on stderr.
    let mut spec = spec_for(vec!["/nonexistent/forgejo-mcp".into()], dir.path());
    spec.run_as = Some(fjmcp_broker::config::UnixUser {
        uid: 65534,
        gid: 65534,
    });
    spec.limits = ResourceLimits {
        open_files: Some(64),
        wrapper: Some(wrapper),
        ..ResourceLimits::default()
    };
    let Err(ChildError::StartFailed {
        reason,
        stderr_tail,
    }) = Child::spawn(spec).await
    else {
        panic!("a missing program under the wrapper fails to start");
    };
    assert!(reason.contains("exit status 127"), "{reason}");
    assert!(
        stderr_tail
            .iter()
            .any(|l| l.contains("cannot run /nonexistent/forgejo-mcp")),
        "{stderr_tail:?}"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_child() {
    init_logs();
    let _shared = PROCESSES.read().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(fixture_spec(dir.path(), &[])).await.unwrap();
    let pid = child.pid().unwrap();
    let clone = child.clone();
    drop(child);
    let answer = clone
        .call(
            tool_call(json!(1), "echo", json!({"text": "here"})),
            None,
            LONG,
        )
        .await
        .expect("a clone keeps the child running");
    assert_eq!(text_of(&answer), "here");
    drop(clone);
    // Stopped in the background (the fixture exits at stdin EOF) and reaped: no zombie left.
    assert!(
        eventually(LONG, || !Path::new(&format!("/proc/{pid}")).exists()).await,
        "child {pid} was not stopped and reaped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_spawn_stop_cycles_leak_no_descriptors_or_zombies() {
    init_logs();
    let _exclusive = PROCESSES.write().await;
    let dir = tempfile::tempdir().unwrap();
    // Warm up: the runtime's signal and process machinery opens descriptors once.
    let spec = fixture_spec(dir.path(), &[]);
    let tasks = spec.tasks.clone();
    let child = Child::spawn(spec).await.unwrap();
    child.stop().await;
    drop(child);
    // Every task of the child (pipes, reaper) has finished: its descriptors are closed.
    tasks.close();
    tasks.wait().await;
    let before = open_fds();

    const CYCLES: usize = 200;
    const LANES: usize = 4;
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..LANES {
        let spec = fixture_spec(dir.path(), &[]);
        lanes.spawn(async move {
            for i in 0..CYCLES / LANES {
                let child = Child::spawn(spec.clone()).await.unwrap();
                if i % 10 == 0 {
                    let response = child
                        .call(
                            tool_call(json!(i), "echo", json!({"text": "x"})),
                            None,
                            LONG,
                        )
                        .await
                        .unwrap();
                    assert_eq!(text_of(&response), "x", "lane {lane}");
                }
                if i % 2 == 0 {
                    child.stop().await;
                } else {
                    // Half are dropped without a stop: the handle's drop must clean up too.
                    let pid = child.pid().unwrap();
                    drop(child);
                    assert!(
                        eventually(LONG, || process_gone(pid)).await,
                        "child {pid} outlived its last handle"
                    );
                }
            }
        });
    }
    while let Some(done) = lanes.join_next().await {
        done.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || open_fds() <= before).await,
        "descriptors before {before}, after {}",
        open_fds()
    );
    assert!(
        eventually(Duration::from_secs(10), || zombie_children().is_empty()).await,
        "zombies: {:?}",
        zombie_children()
    );
}
