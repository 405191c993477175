//! The initialize handshake and `logging/setLevel`.
//!
//! Version negotiation copies mcp-go (the library of the real child, forgejo-mcp): a version we
//! know is echoed, anything else is answered with the latest. The capability set matches the
//! conformance suite's reference server, so conformance runs through the broker see the same
//! server surface they would see against the reference.

use serde_json::{Value, json};

use crate::peer::{LogLevel, Peer};
use crate::protocol::RpcError;

/// The version answered when the client asks for one we do not know.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Every initialize-era version this server speaks, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// `serverInfo.name`.
pub const SERVER_NAME: &str = "fjmcp-fixture-child";

/// The version to answer an `initialize` asking for `requested`.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_PROTOCOL_VERSIONS.into_iter().find(|v| *v == r))
        .unwrap_or(LATEST_PROTOCOL_VERSION)
}

/// Answers `initialize` and remembers the client's capabilities. A repeated `initialize` is
/// answered again (and replaces the capabilities) rather than refused: the fixture is lenient.
pub fn initialize(params: &Value, peer: &Peer) -> Value {
    let version = negotiate(params.get("protocolVersion").and_then(Value::as_str));
    peer.set_client_capabilities(params.get("capabilities").cloned().unwrap_or(json!({})));
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "prompts": { "listChanged": true },
            "logging": {},
            "completions": {}
        },
        "serverInfo": {
            "name": SERVER_NAME,
            "title": "fjmcp-broker fixture child",
            "version": env!("CARGO_PKG_VERSION")
        },
        "instructions": "Test fixture for fjmcp-broker: the MCP conformance suite's fixture tools, \
                         resources and prompts, plus broker test tools (whoami, env_names, sleep, \
                         crash, trigger_list_changed, echo)."
    })
}

/// Answers `logging/setLevel`: `{}` for a known level, -32602 otherwise.
pub fn set_level(params: &Value, peer: &Peer) -> Result<Value, RpcError> {
    let name = params
        .get("level")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("logging/setLevel needs a string `level`"))?;
    let level = LogLevel::parse(name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown log level: {name}")))?;
    peer.set_log_level(level);
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_versions_are_echoed_and_others_get_the_latest() {
        for v in SUPPORTED_PROTOCOL_VERSIONS {
            assert_eq!(negotiate(Some(v)), v);
        }
        assert_eq!(negotiate(Some("2026-07-28")), LATEST_PROTOCOL_VERSION);
        assert_eq!(negotiate(Some("garbage")), LATEST_PROTOCOL_VERSION);
        assert_eq!(negotiate(None), LATEST_PROTOCOL_VERSION);
    }
}
