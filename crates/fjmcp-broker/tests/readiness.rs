//! Readiness reports a failing store with 503 and names it (in-process router,
//! since a real database cannot be made to fail on cue from outside).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use fjmcp_broker::config;
use fjmcp_broker::server;
use http_body_util::BodyExt;
use support::databases::TestDatabase;
use tower::ServiceExt;

#[tokio::test]
async fn readiness_is_503_naming_the_store_when_it_fails() {
    let db = TestDatabase::sqlite();
    let env: BTreeMap<String, String> = [
        ("FJMCP_PUBLIC_URL", "http://127.0.0.1:8080"),
        ("FJMCP_FORGEJO_URL", "http://127.0.0.1:9"),
        ("FJMCP_FORGEJO_CLIENT_ID", "id"),
        ("FJMCP_FORGEJO_CLIENT_SECRET", "secret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (config, _) = config::load(&[], None, &env).unwrap();
    let store = db.open().await;
    let clock = Arc::new(fjmcp_broker::clock::SystemClock);
    let app = server::assemble(Arc::new(config), store.clone(), clock).router();
    let ready = app
        .clone()
        .oneshot(http::Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    store.close().await;
    let down = app
        .oneshot(http::Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    assert_eq!(down.headers()["content-type"], "application/json");
    let body: serde_json::Value =
        serde_json::from_slice(&down.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failed"], serde_json::json!(["store"]));
    assert_eq!(body["checks"]["store"]["ok"], false);
}
