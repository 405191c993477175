//! `bench-echo-child`: the smallest honest stdio MCP server, the child behind every
//! bridge `fjmcp-bench` measures (the broker, supergateway) and the one it drives
//! directly as the stdio floor.
//!
//! Newline-delimited JSON-RPC on stdin and stdout, one thread, blocking I/O, one
//! parse and one write per message: `initialize` (protocol 2025-11-25, tools only),
//! `ping`, `tools/list` (one `echo` tool) and `tools/call` of `echo` (answers the
//! `text` argument). Notifications are ignored; any other request gets -32601.
//! It exits on stdin EOF. Nothing is logged: stderr stays empty, so a bridge that
//! relays a child's stderr pays nothing for it.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::io::{self, BufRead, BufWriter, Write};

use serde::Deserialize;
use serde_json::value::RawValue;

/// The protocol version this child speaks (what forgejo-mcp answers too).
const PROTOCOL_VERSION: &str = "2025-11-25";

/// The parts of a message the child looks at; everything else is skipped unparsed.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    /// Absent for notifications; echoed back verbatim (number or string).
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Debug, Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Arguments<'a>>,
}

#[derive(Debug, Deserialize)]
struct Arguments<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut output = BufWriter::new(io::stdout().lock());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let Ok(message) = serde_json::from_str::<Message<'_>>(&line) else {
            continue;
        };
        // Notifications (no id) and answers to requests the child never sent need no reply.
        let (Some(id), Some(method)) = (message.id, message.method.as_deref()) else {
            continue;
        };
        answer(&mut output, id, method, message.params.as_ref())?;
        output.write_all(b"\n")?;
        // One write per answer: the bridge waits for it.
        output.flush()?;
    }
}

/// Writes the answer to one request (without the newline).
fn answer(
    out: &mut impl Write,
    id: &RawValue,
    method: &str,
    params: Option<&Params<'_>>,
) -> io::Result<()> {
    write!(out, "{{\"jsonrpc\":\"2.0\",\"id\":{},", id.get())?;
    match method {
        "initialize" => write!(
            out,
            "\"result\":{{\"protocolVersion\":\"{PROTOCOL_VERSION}\",\"capabilities\":{{\"tools\":{{}}}},\"serverInfo\":{{\"name\":\"bench-echo-child\",\"version\":\"{}\"}}}}}}",
            env!("CARGO_PKG_VERSION")
        ),
        "ping" => out.write_all(b"\"result\":{}}"),
        "tools/list" => out.write_all(
            b"\"result\":{\"tools\":[{\"name\":\"echo\",\"description\":\"Answers its text argument.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]}}]}}",
        ),
        "tools/call" => {
            let name = params.and_then(|p| p.name.as_deref());
            let text = params
                .and_then(|p| p.arguments.as_ref())
                .and_then(|a| a.text.as_deref());
            match (name, text) {
                (Some("echo"), Some(text)) => {
                    out.write_all(b"\"result\":{\"content\":[{\"type\":\"text\",\"text\":")?;
                    serde_json::to_writer(&mut *out, text)?;
                    out.write_all(b"}]}}")
                }
                _ => out.write_all(
                    b"\"error\":{\"code\":-32602,\"message\":\"only the echo tool, with a text argument\"}}",
                ),
            }
        }
        _ => out.write_all(b"\"error\":{\"code\":-32601,\"message\":\"method not found\"}}"),
    }
}
