//! The echo child speaks the little MCP the bench relies on: the broker's handshake,
//! `tools/list`, `tools/call` of `echo`, notifications ignored, exit on stdin EOF.
//! (Building this test also makes `cargo test` build both of the crate's binaries,
//! which CI's smoke run then uses.)

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[test]
fn the_echo_child_answers_requests_in_order_and_ignores_notifications() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench-echo-child"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "h\u{e9}llo \"quoted\"\n"}}}),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "other", "arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 9, "method": "resources/list"}),
        json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}),
    ];
    for message in &messages {
        writeln!(stdin, "{message}").unwrap();
    }
    drop(stdin);
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    assert!(child.wait().unwrap().success(), "exits 0 on stdin EOF");

    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!(0),
            &json!("list"),
            &json!(7),
            &json!(8),
            &json!(9),
            &json!(10)
        ]
    );
    let init = &answers[0]["result"];
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(init["capabilities"], json!({"tools": {}}));
    assert_eq!(init["serverInfo"]["name"], "bench-echo-child");
    assert_eq!(answers[1]["result"]["tools"][0]["name"], "echo");
    assert_eq!(
        answers[2]["result"]["content"],
        json!([{"type": "text", "text": "h\u{e9}llo \"quoted\"\n"}])
    );
    assert_eq!(answers[3]["error"]["code"], -32602);
    assert_eq!(answers[4]["error"]["code"], -32601);
    assert_eq!(answers[5]["result"], json!({}));
}

#[test]
fn the_bench_binary_describes_itself() {
    let output = Command::new(env!("CARGO_BIN_EXE_fjmcp-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("--smoke") && help.contains("--broker-bin"),
        "{help}"
    );
}
