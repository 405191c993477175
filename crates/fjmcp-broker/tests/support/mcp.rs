//! Talking to `/mcp` of a test stack: raw HTTP requests of either era, and
//! the tool calls the fixture child answers.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::oauth::{CLAUDE_CALLBACK, Stack};

pub const MODERN: &str = "2026-07-28";

/// A stack whose children are the fixture child.
pub async fn stack() -> Stack {
    stack_with(&[]).await
}

/// [`stack`] with more broker settings.
pub async fn stack_with(settings: &[(&str, &str)]) -> Stack {
    let child = super::children::fixture_child().display().to_string();
    let mut all = vec![("FJMCP_CHILD_COMMAND", child.as_str())];
    all.extend_from_slice(settings);
    Stack::start(&all).await
}

/// An access token of `login` for a fresh client.
pub async fn token_of(stack: &Stack, login: &str) -> String {
    let client = stack.register("mcp test", &[CLAUDE_CALLBACK]).await;
    let tokens = stack.tokens_for(login, &client).await;
    tokens["access_token"].as_str().unwrap().to_string()
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The JSON-RPC messages of an SSE body, in order.
    pub fn events(&self) -> Vec<Value> {
        self.text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }
}

/// POSTs `body` to the stack's `/mcp`.
pub async fn post(
    stack: &Stack,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Value,
) -> Reply {
    post_to(stack, &stack.url("/mcp"), token, headers, body).await
}

/// POSTs `body` to `url` (another instance's `/mcp`).
pub async fn post_to(
    stack: &Stack,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Value,
) -> Reply {
    let mut request = stack.http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

pub fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
}

pub async fn session_of(stack: &Stack, token: &str, version: &str) -> String {
    let reply = post(
        stack,
        Some(token),
        &[("accept", "application/json, text/event-stream")],
        initialize(version),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.headers["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

pub fn modern(id: Value, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub fn modern_headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if let Some(name) = name {
        headers.push(("mcp-name", name));
    }
    headers
}

/// A well-formed 2026-07-28 request: the `Mcp-Method` and `Mcp-Name` headers
/// mirror the body, as a conforming client sends them.
pub async fn call_modern(
    stack: &Stack,
    token: &str,
    id: Value,
    method: &str,
    params: Value,
) -> Reply {
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .filter(|_| matches!(method, "tools/call" | "prompts/get" | "resources/read"))
        .map(str::to_string);
    let headers = modern_headers(method, name.as_deref());
    post(stack, Some(token), &headers, modern(id, method, params)).await
}

/// A `tools/call` request (2025-era shape).
pub fn tool_call(id: Value, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

/// The text of a tool result's first content item.
pub fn text_of(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {response}"))
        .to_string()
}
