//! The security hardening of issue 12, item by item, against the real broker
//! binary (and, for the pieces that are about processes, real processes):
//! consent that cannot be ridden, limits on anonymous endpoints, children and
//! broker that cannot read each other, and the smaller items.

mod support;

use std::time::Duration;

use support::broker::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A safety net for waits that must end by themselves; never the expected time.
const NEVER: Duration = Duration::from_secs(20);

/// Reads until the peer closes; what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    String::from_utf8_lossy(&received).into_owned()
}

// Item 2: limits on anonymous endpoints.

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
