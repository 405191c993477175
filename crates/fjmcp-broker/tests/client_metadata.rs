//! Fetching client ID metadata documents from a local server: validation,
//! redirects, size and time limits, and refusals that must not reach the
//! network at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use fjmcp_broker::oauth::client_metadata::{FetchError, FetchPolicy, MetadataFetcher};
use fjmcp_broker::oauth::registration::TokenEndpointAuthMethod;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
struct Site {
    base: String,
    requests: Arc<AtomicUsize>,
    /// `/held` answers only once the test adds a permit here.
    release: Arc<tokio::sync::Semaphore>,
}

/// One handler for every path, so every request is counted.
async fn serve(State(site): State<Site>, uri: Uri) -> Response {
    site.requests.fetch_add(1, Ordering::SeqCst);
    let id = format!("{}{}", site.base, uri.path());
    let document = |id: &str| {
        json!({
            "client_id": id,
            "client_name": "Test Client",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        })
        .to_string()
    };
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    match uri.path() {
        "/good" => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "public, max-age=600"),
            ],
            document(&id),
        )
            .into_response(),
        "/unnamed" => (
            json_type,
            json!({"client_id": id, "redirect_uris": ["https://example.com/cb"]}).to_string(),
        )
            .into_response(),
        "/wrong-id" => (json_type, document(&format!("{}/other", site.base))).into_response(),
        "/secret" => {
            let mut doc: serde_json::Value = serde_json::from_str(&document(&id)).unwrap();
            doc["token_endpoint_auth_method"] = json!("client_secret_basic");
            (json_type, doc.to_string()).into_response()
        }
        "/redirect" => (
            StatusCode::FOUND,
            [(header::LOCATION, format!("{}/good", site.base))],
        )
            .into_response(),
        "/big" => {
            let mut doc: serde_json::Value = serde_json::from_str(&document(&id)).unwrap();
            doc["padding"] = json!("x".repeat(200 * 1024));
            (json_type, doc.to_string()).into_response()
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (json_type, document(&id)).into_response()
        }
        "/held" | "/held-too" => {
            let _permit = site.release.acquire().await.unwrap();
            (json_type, document(&id)).into_response()
        }
        "/not-json" => "<html>hello</html>".into_response(),
        "/array" => (json_type, "[]").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_site() -> Site {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let site = Site {
        base: format!("http://{addr}"),
        requests: Arc::new(AtomicUsize::new(0)),
        release: Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let app = Router::new().fallback(serve).with_state(site.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    site
}

fn test_policy() -> FetchPolicy {
    FetchPolicy {
        timeout: Duration::from_secs(5),
        max_bytes: 64 * 1024,
        allow_loopback_http: true,
        max_concurrent: 8,
        // Most tests fetch failing documents repeatedly: nothing remembered.
        failure_cache: Duration::ZERO,
    }
}

#[tokio::test]
async fn valid_document_is_fetched_and_validated() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let id = format!("{}/good", site.base);
    assert!(fetcher.handles(&id));
    let fetched = fetcher.fetch(&id).await.unwrap();
    let m = &fetched.metadata;
    assert_eq!(m.client_name.as_deref(), Some("Test Client"));
    assert_eq!(
        m.redirect_uris,
        ["http://localhost/callback", "http://127.0.0.1/callback"]
    );
    assert_eq!(m.token_endpoint_auth_method, TokenEndpointAuthMethod::None);
    assert_eq!(m.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(m.document["client_id"], id.as_str());
    assert_eq!(fetched.cache_for, Duration::from_secs(600));
    assert_eq!(site.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn document_without_a_name_is_named_by_its_host() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let fetched = fetcher
        .fetch(&format!("{}/unnamed", site.base))
        .await
        .unwrap();
    assert_eq!(fetched.metadata.client_name.as_deref(), Some("127.0.0.1"));
    assert_eq!(fetched.cache_for, Duration::from_secs(3600));
}

#[tokio::test]
async fn wrong_client_id_is_invalid() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let result = fetcher.fetch(&format!("{}/wrong-id", site.base)).await;
    assert!(
        matches!(result, Err(FetchError::Invalid(ref m)) if m.contains("client_id")),
        "{result:?}"
    );
}

#[tokio::test]
async fn confidential_document_is_invalid() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let result = fetcher.fetch(&format!("{}/secret", site.base)).await;
    assert!(matches!(result, Err(FetchError::Invalid(_))), "{result:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let result = fetcher.fetch(&format!("{}/redirect", site.base)).await;
    assert!(
        matches!(result, Err(FetchError::BadStatus(302))),
        "{result:?}"
    );
    assert_eq!(
        site.requests.load(Ordering::SeqCst),
        1,
        "the redirect target was fetched"
    );
}

#[tokio::test]
async fn error_statuses_are_bad_status() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let result = fetcher.fetch(&format!("{}/missing", site.base)).await;
    assert!(
        matches!(result, Err(FetchError::BadStatus(404))),
        "{result:?}"
    );
}

#[tokio::test]
async fn oversized_body_is_too_large() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    let result = fetcher.fetch(&format!("{}/big", site.base)).await;
    assert!(matches!(result, Err(FetchError::TooLarge)), "{result:?}");
}

/// A server that announces no length and streams chunks forever: the fetcher
/// must stop reading at the limit rather than wait for the end.
#[tokio::test]
async fn endless_chunked_body_is_cut_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 1024, " ".repeat(1024));
                while socket.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    let fetcher = MetadataFetcher::new(FetchPolicy {
        timeout: Duration::from_secs(10),
        ..test_policy()
    });
    let started = tokio::time::Instant::now();
    let result = fetcher.fetch(&format!("http://{addr}/endless")).await;
    assert!(matches!(result, Err(FetchError::TooLarge)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn slow_server_is_unreachable() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(FetchPolicy {
        timeout: Duration::from_millis(300),
        ..test_policy()
    });
    let started = tokio::time::Instant::now();
    let result = fetcher.fetch(&format!("{}/slow", site.base)).await;
    assert!(
        matches!(result, Err(FetchError::Unreachable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn non_json_is_invalid() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(test_policy());
    for path in ["/not-json", "/array"] {
        let result = fetcher.fetch(&format!("{}{path}", site.base)).await;
        assert!(
            matches!(result, Err(FetchError::Invalid(_))),
            "{path}: {result:?}"
        );
    }
}

#[tokio::test]
async fn loopback_is_refused_without_a_request_by_default() {
    let site = start_site().await;
    // The production policy, except that failures are not remembered (the same
    // refused URL is tried twice below).
    let fetcher = MetadataFetcher::new(FetchPolicy {
        failure_cache: Duration::ZERO,
        ..FetchPolicy::default()
    });
    let id = format!("{}/good", site.base);
    assert!(!fetcher.handles(&id));
    let result = fetcher.fetch(&id).await;
    assert!(
        matches!(result, Err(FetchError::NotAllowed(_))),
        "{result:?}"
    );

    // The same server named over https, by address or by name: refused by the
    // address check (for `localhost`, by the resolver), before connecting.
    let port = site.base.rsplit(':').next().unwrap();
    for id in [
        format!("https://127.0.0.1:{port}/good"),
        format!("https://[::1]:{port}/good"),
        format!("https://localhost:{port}/good"),
        "https://localhost/client".to_string(),
        "https://127.0.0.1/client".to_string(),
    ] {
        let result = fetcher.fetch(&id).await;
        assert!(
            matches!(result, Err(FetchError::NotAllowed(_))),
            "{id}: {result:?}"
        );
    }
    // A name (not an IP literal) is vetted by the resolver the HTTP client uses.
    let result = fetcher
        .fetch(&format!("https://localhost:{port}/good"))
        .await;
    assert!(
        matches!(result, Err(FetchError::NotAllowed(ref m)) if m.contains("localhost resolves to")),
        "{result:?}"
    );
    assert_eq!(site.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn loopback_http_policy_still_refuses_private_addresses() {
    let fetcher = MetadataFetcher::new(test_policy());
    for id in [
        "http://10.0.0.1/client",
        "https://169.254.169.254/latest/meta-data",
        "http://example.com/client",
        "http://localhost/client",
    ] {
        let result = fetcher.fetch(id).await;
        assert!(
            matches!(result, Err(FetchError::NotAllowed(_))),
            "{id}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_document_is_not_fetched_again_for_a_while_whatever_its_query() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(FetchPolicy {
        failure_cache: Duration::from_secs(30),
        ..test_policy()
    });
    let missing = format!("{}/missing", site.base);
    assert!(matches!(
        fetcher.fetch(&missing).await,
        Err(FetchError::BadStatus(404))
    ));
    for again in [
        missing.clone(),
        format!("{missing}?v=2"),
        format!("{missing}?x=y"),
    ] {
        assert!(
            matches!(fetcher.fetch(&again).await, Err(FetchError::RecentlyFailed)),
            "{again}"
        );
    }
    assert_eq!(site.requests.load(Ordering::SeqCst), 1, "one fetch only");
    // Other documents are not affected, and what succeeds is not remembered here.
    fetcher.fetch(&format!("{}/good", site.base)).await.unwrap();
    fetcher.fetch(&format!("{}/good", site.base)).await.unwrap();
    assert_eq!(site.requests.load(Ordering::SeqCst), 3);
    // The caller is told no details.
    assert_eq!(
        FetchError::NotAllowed("localhost resolves to 127.0.0.1".into()).public_message(),
        "its URL is not one the broker fetches"
    );
}

#[tokio::test]
async fn only_so_many_documents_are_fetched_at_once() {
    let site = start_site().await;
    let fetcher = MetadataFetcher::new(FetchPolicy {
        max_concurrent: 1,
        ..test_policy()
    });
    let first = tokio::spawn({
        let fetcher = fetcher.clone();
        let id = format!("{}/held", site.base);
        async move { fetcher.fetch(&id).await }
    });
    let wait = |what: &'static str, check: Box<dyn Fn() -> bool + Send>| async move {
        for _ in 0..1000 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{what} did not happen");
    };
    let requests = site.requests.clone();
    wait(
        "the first fetch reached the site",
        Box::new(move || requests.load(Ordering::SeqCst) == 1),
    )
    .await;
    let second = tokio::spawn({
        let fetcher = fetcher.clone();
        let id = format!("{}/held-too", site.base);
        async move { fetcher.fetch(&id).await }
    });
    let queued = fetcher.clone();
    wait(
        "the second fetch waits for its turn",
        Box::new(move || queued.queued() == 1),
    )
    .await;
    assert_eq!(
        site.requests.load(Ordering::SeqCst),
        1,
        "the second fetch must not start while the first runs"
    );
    site.release.add_permits(2);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(site.requests.load(Ordering::SeqCst), 2);
}
