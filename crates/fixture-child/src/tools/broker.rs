//! Tools for fjmcp-broker's own tests: identity, environment, timing, crashes, notifications.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::required_str;
use crate::content::{tool_error, tool_text};
use crate::peer::RequestContext;

/// The longest `sleep` accepted (one hour), so a typo cannot park a request forever.
pub(crate) const MAX_SLEEP_MS: u64 = 3_600_000;

/// The exit status of `crash`, distinct from 0 (clean), 1 (start-up check) and 2 (usage).
pub(crate) const CRASH_EXIT_CODE: i32 = 3;

/// `whoami`: the Forgejo login of the token this process was started with.
pub(crate) async fn whoami(ctx: &RequestContext) -> Value {
    let Some(forgejo) = &ctx.peer().options().forgejo else {
        return tool_error("FORGEJO_URL is not set; this child has no Forgejo identity");
    };
    match forgejo.current_user().await {
        Ok(login) => tool_text(login),
        Err(e) => tool_error(e.to_string()),
    }
}

/// `env_names`: the sorted names of this process's environment variables, one per line, so a
/// test can prove the broker passed nothing beyond its allow-list. Values are never returned.
pub(crate) fn env_names() -> Value {
    let mut names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    names.sort();
    tool_text(names.join("\n"))
}

/// `sleep`: waits `ms` milliseconds. Cancellation needs nothing here: the dispatcher aborts the
/// task and suppresses the response.
pub(crate) async fn sleep(args: &Map<String, Value>) -> Value {
    let Some(ms) = args.get("ms").and_then(Value::as_u64) else {
        return tool_error("Invalid arguments: `ms` must be a non-negative integer");
    };
    if ms > MAX_SLEEP_MS {
        return tool_error(format!(
            "Invalid arguments: `ms` must be at most {MAX_SLEEP_MS}"
        ));
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    tool_text(format!("slept {ms} ms"))
}

/// `crash`: exits at once with status [`CRASH_EXIT_CODE`], as a child dying mid-request would.
pub(crate) fn crash() -> Value {
    tracing::warn!("crash tool called; exiting with status {CRASH_EXIT_CODE}");
    std::process::exit(CRASH_EXIT_CODE);
}

/// `trigger_list_changed`: the three list_changed notifications, then a result.
pub(crate) fn trigger_list_changed(ctx: &RequestContext) -> Value {
    for method in [
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
        "notifications/prompts/list_changed",
    ] {
        ctx.peer().notify(method, json!({}));
    }
    tool_text("sent tools, resources and prompts list_changed notifications")
}

/// `echo`: returns `text`.
pub(crate) fn echo(args: &Map<String, Value>) -> Value {
    match required_str(args, "text") {
        Ok(text) => tool_text(text),
        Err(error) => error,
    }
}
