//! The HTTP edge: the router, the middleware stack and the health endpoints.
//!
//! Invariant: only this module (and the handlers it mounts) knows axum, and
//! every error leaving the broker is turned into a response here, with a body
//! the client can read (JSON unless a handler chose otherwise).

mod errors;

pub use errors::json_error;
mod health;
mod request_id;

use axum::Router;
use axum::routing::get;
use http::{HeaderName, StatusCode, header};
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::children::{Pool, PoolSettings};
use crate::clock::Clock;
use crate::config::Config;
use crate::forgejo::{EndpointOverrides, ForgejoClient};
use crate::oauth::client_metadata::{FetchPolicy, MetadataFetcher};
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The persistent state.
    pub store: Store,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// "Now" for every expiry the handlers compute.
    pub clock: Arc<dyn Clock>,
    /// The broker's OAuth client of Forgejo.
    pub forgejo: ForgejoClient,
    /// Fetches client ID metadata documents with SSRF protection.
    pub client_metadata: MetadataFetcher,
    /// One stdio child per Forgejo user.
    pub pool: Pool,
    /// In-flight 2025-era requests a client may cancel.
    pub cancellations: crate::mcp::endpoint::Cancellations,
}

impl AppState {
    /// Assembles the state from its parts, building the outbound clients from
    /// the configuration.
    pub fn new(config: Arc<Config>, store: Store, clock: Arc<dyn Clock>) -> AppState {
        let forgejo = ForgejoClient::new(
            &config.forgejo.url,
            &config.forgejo.client_id,
            config.forgejo.client_secret.clone(),
            &config.forgejo.scopes,
            EndpointOverrides {
                authorize: config.forgejo.authorize_url.clone(),
                token: config.forgejo.token_url.clone(),
                userinfo: config.forgejo.userinfo_url.clone(),
            },
        );
        if config.oauth.client_metadata_allow_loopback_http {
            tracing::warn!(
                "client metadata documents may be fetched over http from loopback: a TEST-ONLY setting"
            );
        }
        let client_metadata = MetadataFetcher::new(FetchPolicy {
            allow_loopback_http: config.oauth.client_metadata_allow_loopback_http,
            ..FetchPolicy::default()
        });
        let pool = Pool::new(
            PoolSettings::from_config(&config),
            store.clone(),
            forgejo.clone(),
            clock.clone(),
        );
        AppState {
            store,
            config,
            clock,
            forgejo,
            client_metadata,
            pool,
            cancellations: Default::default(),
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the broker's router with its middleware.
pub fn router(state: AppState) -> Router {
    let limits = state.config.http.clone();
    let mcp = crate::mcp::endpoint::routes(state.clone());
    Router::new()
        .merge(mcp)
        .route("/healthz", get(health::liveness))
        .route("/readyz", get(health::readiness))
        .merge(crate::oauth::routes())
        .fallback(errors::not_found)
        .with_state(state)
        .layer(
            // Outermost first; the order is deliberate.
            ServiceBuilder::new()
                // First, so no later layer (tracing in particular) can ever print credentials.
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ]))
                // Before tracing, so the span carries the id; a client-sent id is kept.
                .layer(SetRequestIdLayer::new(REQUEST_ID, request_id::Random))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_id::span)
                        // One line per response at info: what operators read first.
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                // Outside the timeout and body limit, so the bare errors they produce get
                // a JSON body (and inside tracing, so those responses are logged too).
                .layer(axum::middleware::map_response(errors::json_error_bodies))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    limits.request_timeout,
                ))
                .layer(RequestBodyLimitLayer::new(limits.max_body_bytes)),
        )
}
