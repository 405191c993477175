//! The MCP request headers and how their values are read (2026-07-28
//! `streamable-http.mdx` §Request Metadata, SEP-2243).
//!
//! Values are taken as raw bytes, because a header value may legally carry
//! bytes that are not text (`obs-text`), and "a header value contains invalid
//! characters" is itself a validation failure the server must report as
//! -32020 rather than silently treating the header as absent.
//!
//! Rules, and the decisions behind them:
//!
//! - **Optional whitespace is trimmed** (space and tab at both ends) before a
//!   value is evaluated: RFC 9110 §5.5 says field parsing MUST exclude it, and
//!   the conformance suite sends `Mcp-Name: "  tool  "` expecting acceptance.
//! - **Plain values are visible ASCII, space or tab** (0x21–0x7E, 0x20,
//!   0x09), the set the specification names; anything else (non-ASCII,
//!   control characters) is an invalid value.
//! - **The Base64 sentinel `=?base64?…?=`** is decoded for `Mcp-Name` (and
//!   would be for `Mcp-Param-*`), never for `Mcp-Method` or
//!   `MCP-Protocol-Version`, which the specification does not allow to be
//!   encoded. The markers are case-sensitive; a value missing either marker is
//!   literal. Decoding is strict standard Base64 with canonical padding: the
//!   suite's test table rejects `SGVsbG8` (missing padding) and non-alphabet
//!   characters. The decoded bytes must be UTF-8, since they are compared with
//!   a JSON string.
//! - **The first occurrence of a header counts** ([`RequestHeaders::from_map`]
//!   uses `HeaderMap::get`); repeated MCP headers are not given a meaning.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

/// `MCP-Protocol-Version`: the protocol version of this POST (both eras; in
/// 2026-07-28 it must equal the body's `_meta` claim).
pub(crate) const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Method`: mirrors the body's `method` (2026-07-28, all requests).
const METHOD: &str = "mcp-method";
/// `Mcp-Name`: mirrors `params.name` / `params.uri` (2026-07-28, for
/// `tools/call`, `prompts/get`, `resources/read`).
const NAME: &str = "mcp-name";
/// `Mcp-Session-Id`: the 2025-era session a request belongs to.
pub(crate) const SESSION_ID: &str = "mcp-session-id";

/// Prefix of a Base64-encoded header value.
const BASE64_PREFIX: &str = "=?base64?";
/// Suffix of a Base64-encoded header value.
const BASE64_SUFFIX: &str = "?=";

/// The MCP headers of one POST, as raw bytes (`None`: header absent). Plain
/// data, so the rules can be tested without an HTTP stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestHeaders<'a> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a [u8]>,
    /// `Mcp-Method`.
    pub method: Option<&'a [u8]>,
    /// `Mcp-Name`.
    pub name: Option<&'a [u8]>,
    /// `Mcp-Session-Id`.
    pub session_id: Option<&'a [u8]>,
}

impl<'a> RequestHeaders<'a> {
    /// Reads the MCP headers out of an HTTP header map (names are matched
    /// case-insensitively by `http`, as the specification requires).
    pub(crate) fn from_map(map: &'a HeaderMap) -> Self {
        let get = |name: &str| map.get(name).map(|v| v.as_bytes());
        Self {
            protocol_version: get(PROTOCOL_VERSION),
            method: get(METHOD),
            name: get(NAME),
            session_id: get(SESSION_ID),
        }
    }
}

/// Why a header value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderValueError {
    /// A byte outside visible ASCII, space and tab.
    #[error("contains characters that are not allowed in a plain header value")]
    InvalidCharacters,
    /// The `=?base64?…?=` payload is not canonical standard Base64.
    #[error("carries an invalid Base64 value")]
    InvalidBase64,
    /// The Base64 payload decodes to bytes that are not UTF-8.
    #[error("carries a Base64 value that is not UTF-8")]
    NotUtf8,
}

/// A plain header value with optional whitespace trimmed, or
/// [`HeaderValueError::InvalidCharacters`].
pub(crate) fn plain_value(raw: &[u8]) -> Result<&str, HeaderValueError> {
    let trimmed = trim_ows(raw);
    if !trimmed
        .iter()
        .all(|&b| (0x20..=0x7e).contains(&b) || b == b'\t')
    {
        return Err(HeaderValueError::InvalidCharacters);
    }
    // Only ASCII bytes remain, so this cannot fail.
    std::str::from_utf8(trimmed).map_err(|_| HeaderValueError::InvalidCharacters)
}

/// The value of a header that may use the Base64 sentinel (`Mcp-Name`,
/// `Mcp-Param-*`): trimmed, checked, and decoded when it is wrapped in
/// `=?base64?…?=`.
pub(crate) fn decode_mcp_value(raw: &[u8]) -> Result<String, HeaderValueError> {
    let plain = plain_value(raw)?;
    let encoded = plain
        .strip_prefix(BASE64_PREFIX)
        .and_then(|rest| rest.strip_suffix(BASE64_SUFFIX));
    match encoded {
        None => Ok(plain.to_owned()),
        Some(payload) => {
            let bytes = STANDARD
                .decode(payload)
                .map_err(|_| HeaderValueError::InvalidBase64)?;
            String::from_utf8(bytes).map_err(|_| HeaderValueError::NotUtf8)
        }
    }
}

/// `raw` without leading and trailing spaces and tabs.
fn trim_ows(raw: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = raw.iter().position(|b| !is_ows(b)).unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &raw[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn decodes_the_specification_examples() {
        // streamable-http.mdx, "Encoding examples".
        let cases: &[(&str, &str)] = &[
            ("us-west1", "us-west1"),
            ("=?base64?SGVsbG8sIOS4lueVjA==?=", "Hello, 世界"),
            ("=?base64?IHBhZGRlZCA=?=", " padded "),
            ("=?base64?bGluZTEKbGluZTI=?=", "line1\nline2"),
            ("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", "=?base64?literal?="),
        ];
        for (header, expected) in cases {
            assert_eq!(
                decode_mcp_value(header.as_bytes()).as_deref(),
                Ok(*expected),
                "{header}"
            );
        }
    }

    #[test]
    fn header_values_table() {
        use HeaderValueError::*;
        // (raw header bytes, decoded value or error)
        let cases: &[(&[u8], Result<&str, HeaderValueError>)] = &[
            (b"  get_weather  ", Ok("get_weather")),
            (b"\tname\t", Ok("name")),
            (b"a b\tc", Ok("a b\tc")),
            (b"", Ok("")),
            (b"   ", Ok("")),
            (b"=?base64??=", Ok("")),
            (b"  =?base64?SGVsbG8=?=  ", Ok("Hello")),
            // Markers are case-sensitive and both are needed; otherwise literal.
            (b"=?BASE64?SGVsbG8=?=", Ok("=?BASE64?SGVsbG8=?=")),
            (b"SGVsbG8=", Ok("SGVsbG8=")),
            (b"=?base64?SGVsbG8=", Ok("=?base64?SGVsbG8=")),
            (b"SGVsbG8=?=", Ok("SGVsbG8=?=")),
            // The conformance suite's invalid Base64 cases.
            (b"=?base64?SGVsbG8?=", Err(InvalidBase64)),
            (b"=?base64?SGVs!!!bG8=?=", Err(InvalidBase64)),
            (b"=?base64?SGVs bG8=?=", Err(InvalidBase64)),
            (b"=?base64?/w==?=", Err(NotUtf8)),
            // Plain values must be visible ASCII, space or tab.
            ("caf\u{e9}".as_bytes(), Err(InvalidCharacters)),
            (b"caf\xe9", Err(InvalidCharacters)),
            (b"a\x00b", Err(InvalidCharacters)),
            (b"a\nb", Err(InvalidCharacters)),
            (b"a\x7fb", Err(InvalidCharacters)),
        ];
        for (raw, expected) in cases {
            let got = decode_mcp_value(raw);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                expected.map_err(|e| e),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn plain_values_are_never_base64_decoded() {
        assert_eq!(
            plain_value(b" =?base64?SGVsbG8=?= "),
            Ok("=?base64?SGVsbG8=?=")
        );
        assert_eq!(plain_value(b"tools/list"), Ok("tools/list"));
        assert_eq!(
            plain_value("tools/l\u{ef}st".as_bytes()),
            Err(HeaderValueError::InvalidCharacters)
        );
    }

    #[test]
    fn headers_are_read_case_insensitively_from_a_map() {
        let mut map = HeaderMap::new();
        map.insert(
            "MCP-PROTOCOL-VERSION",
            HeaderValue::from_static("2026-07-28"),
        );
        map.insert("mcp-method", HeaderValue::from_static("tools/call"));
        map.insert("Mcp-Name", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let headers = RequestHeaders::from_map(&map);
        assert_eq!(headers.protocol_version, Some(&b"2026-07-28"[..]));
        assert_eq!(headers.method, Some(&b"tools/call"[..]));
        assert_eq!(headers.name, Some(&b"caf\xe9"[..]));
        assert_eq!(headers.session_id, None);
    }
}
