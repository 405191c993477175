//! Content blocks and the fixture payloads shared by tools, resources and prompts.
//!
//! The payloads are the conformance reference server's, byte for byte, so a check that compares
//! against the reference passes here too.

use serde_json::{Value, json};

/// A 1×1 red PNG, base64 (the reference server's `TEST_IMAGE_BASE64`).
pub const TEST_IMAGE_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, base64 (the reference server's `TEST_AUDIO_BASE64`).
pub const TEST_AUDIO_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// A text content block.
pub fn text(text: impl Into<String>) -> Value {
    json!({ "type": "text", "text": text.into() })
}

/// An image content block.
pub fn image(data: &str, mime_type: &str) -> Value {
    json!({ "type": "image", "data": data, "mimeType": mime_type })
}

/// An audio content block.
pub fn audio(data: &str, mime_type: &str) -> Value {
    json!({ "type": "audio", "data": data, "mimeType": mime_type })
}

/// An embedded text resource content block.
pub fn embedded_text(uri: &str, mime_type: &str, text: &str) -> Value {
    json!({
        "type": "resource",
        "resource": { "uri": uri, "mimeType": mime_type, "text": text }
    })
}

/// A successful `CallToolResult` with `content`.
pub fn tool_result(content: Vec<Value>) -> Value {
    json!({ "content": content })
}

/// A successful `CallToolResult` with one text block.
pub fn tool_text(message: impl Into<String>) -> Value {
    tool_result(vec![text(message)])
}

/// A `CallToolResult` with `isError: true`: the tool ran and failed, which MCP reports in-band
/// so the model can read why (as opposed to a JSON-RPC error for a malformed call).
pub fn tool_error(message: impl Into<String>) -> Value {
    json!({ "content": [text(message)], "isError": true })
}

/// An MRTR `InputRequiredResult` (SEP-2322).
pub fn input_required(input_requests: Value, request_state: Option<String>) -> Value {
    let mut result = json!({ "resultType": "input_required", "inputRequests": input_requests });
    if let Some(state) = request_state {
        result["requestState"] = Value::String(state);
    }
    result
}

/// A prompt message from the user.
pub fn user_message(content: Value) -> Value {
    json!({ "role": "user", "content": content })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn fixture_payloads_are_what_their_mime_types_say() {
        let png = STANDARD.decode(TEST_IMAGE_BASE64).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let wav = STANDARD.decode(TEST_AUDIO_BASE64).unwrap();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
    }
}
