//! The server loop: accept connections up to a cap, serve each with hyper's
//! HTTP/1.1 under a header-read timeout, hand the router the peer's address,
//! and drain gracefully. `axum::serve` exposes neither the timeout nor a cap,
//! so slow or idle clients could hold any number of connections open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpSettings;

/// What a connection beyond the cap gets before it is closed: a complete
/// answer, so a client (or a proxy) sees why instead of a reset.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
cache-control: no-store\r\n\
connection: close\r\n\
content-length: 86\r\n\r\n\
{\"error\":\"server_busy\",\"error_description\":\"too many open connections; retry shortly\"}";

/// Refusals being written at once; past this, extra connections are just closed.
const MAX_REFUSALS: usize = 64;
/// How long a refusal may take to write and to read what the client sent.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Pause after an accept error that is not about one connection (out of file
/// descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops
/// accepting, lets every connection finish its in-flight request (idle ones
/// close at once) and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let at_cap = Arc::new(AtomicBool::new(false));
    // Every connection task holds a receiver; the loop's end waits until none is left.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_per_connection(&e) {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_connections = settings.max_connections,
                    "connection cap reached: refusing new connections with 503"
                );
            }
            refuse(stream, &refusals);
            continue;
        };
        if at_cap.swap(false, Ordering::Relaxed) {
            tracing::info!("below the connection cap again");
        }
        let service = app
            .clone()
            .map_request(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let shutdown = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let mut draining = false;
            let served = loop {
                tokio::select! {
                    served = connection.as_mut() => break served,
                    () = shutdown.cancelled(), if !draining => {
                        // Finish the request in flight, then close.
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            };
            if let Err(e) = served {
                // Timeouts and clients that went away: routine, not errors.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
            drop(open);
        });
    }
    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before it
/// was accepted): try the next.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// Answers a connection beyond the cap with [`BUSY`] and closes it, reading
/// what the client sent first so the close does not reset the answer away.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return; // dropping closes it
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut left: usize = 64 * 1024;
            while left > 0 {
                let n = stream.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// The peer address the server loop put on a request, if any (requests
/// driven in-process have none).
pub(crate) fn peer_of<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_response() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "server_busy");
    }
}
