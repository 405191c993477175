//! Rate limits on the endpoints anyone may call without credentials
//! (`/oauth/register`, `/oauth/authorize`, `/oauth/token`): a token bucket per
//! client address and one for everyone, per endpoint, answering 429 with
//! `Retry-After`.
//!
//! The client address is the peer's, or, when the peer is a trusted reverse
//! proxy, the last address in `X-Forwarded-For` that is not a trusted proxy
//! (proxies append, so everything left of that could be made up by the
//! client). IPv6 clients are counted per /64, the smallest network one
//! subscriber usually gets. Hosted MCP clients (claude.ai, ChatGPT) reach the
//! broker from a few shared addresses, so the defaults are generous; the
//! limits bound floods, not ordinary use.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::{HttpSettings, IpNet, Rate};

/// Client addresses tracked per endpoint before full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

/// The endpoints that are limited, each with its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Register,
    Authorize,
    Token,
}

/// The limiter the router's middleware asks; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct RateLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    per_client: Option<Rate>,
    global: Option<Rate>,
    trusted_proxies: Vec<IpNet>,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    per_client: HashMap<(Endpoint, IpAddr), Bucket>,
    global: HashMap<Endpoint, Bucket>,
}

/// A token bucket: `tokens` left at `at`, refilled at the rate's pace up to
/// its count.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.count),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let capacity = f64::from(rate.count);
        let per_token = rate.per.as_secs_f64() / capacity;
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / per_token;
        self.tokens = (self.tokens + earned).min(capacity);
        self.at = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let per_token = rate.per.as_secs_f64() / f64::from(rate.count);
        Err(Duration::from_secs_f64((1.0 - self.tokens) * per_token))
    }
}

impl RateLimits {
    pub(crate) fn new(settings: &HttpSettings) -> RateLimits {
        RateLimits {
            inner: Arc::new(Inner {
                per_client: settings.rate_limit_per_ip,
                global: settings.rate_limit_global,
                trusted_proxies: settings.trusted_proxies.clone(),
                buckets: Mutex::default(),
            }),
        }
    }

    /// Admits one request of `client` to `endpoint`, or says how long to wait.
    fn admit(&self, endpoint: Endpoint, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let inner = &self.inner;
        let mut buckets = inner.buckets.lock();
        if let Some(rate) = inner.per_client {
            if buckets.per_client.len() >= MAX_TRACKED {
                forget_full(&mut buckets.per_client, rate, now);
            }
            buckets
                .per_client
                .entry((endpoint, counted_as(client)))
                .or_insert_with(|| Bucket::full(rate, now))
                .take(rate, now)?;
        }
        if let Some(rate) = inner.global {
            buckets
                .global
                .entry(endpoint)
                .or_insert_with(|| Bucket::full(rate, now))
                .take(rate, now)?;
        }
        Ok(())
    }
}

/// Drops buckets that have filled up again (forgetting them changes nothing);
/// if that is not enough, all of them (the global limit still holds).
fn forget_full(buckets: &mut HashMap<(Endpoint, IpAddr), Bucket>, rate: Rate, now: Instant) {
    buckets.retain(|_, bucket| {
        bucket.refill(rate, now);
        bucket.tokens < f64::from(rate.count)
    });
    if buckets.len() >= MAX_TRACKED {
        tracing::warn!("rate limiter: too many client addresses tracked; forgetting them all");
        buckets.clear();
    }
}

/// The key a client address is counted under: IPv4 as is (also when written
/// as IPv4-mapped IPv6), IPv6 by its /64.
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then
/// the rightmost `X-Forwarded-For` entry that is not a trusted proxy.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_forwarded(entry) else {
            break; // garbage: the last address a trusted hop vouched for stands
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// Axum middleware for one limited endpoint.
pub(crate) async fn limit(
    State((limits, endpoint)): State<(RateLimits, Endpoint)>,
    request: Request,
    next: Next,
) -> Response {
    // Requests driven in-process (tests) have no peer: they share one bucket.
    let peer = super::serve::peer_of(&request)
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.ip());
    let client = client_address(peer, request.headers(), &limits.inner.trusted_proxies);
    match limits.admit(endpoint, client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // Each refusal is also logged as a 429 response; one more line per
            // request of a flood would only flood the log.
            tracing::debug!(?endpoint, %client, "rate limited");
            too_many(endpoint, wait)
        }
    }
}

/// 429 with `Retry-After` (whole seconds, at least one): an HTML page for the
/// browser's authorize request, OAuth-shaped JSON for the others.
fn too_many(endpoint: Endpoint, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let text = format!("Too many requests; retry in {seconds} seconds.");
    let mut response = match endpoint {
        Endpoint::Authorize => (
            StatusCode::TOO_MANY_REQUESTS,
            Html(format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>Too many requests</title></head><body><h1>Too many requests</h1>\
                 <p>{text}</p></body></html>"
            )),
        )
            .into_response(),
        Endpoint::Register | Endpoint::Token => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": "too_many_requests",
                "error_description": text,
            })),
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(secs),
        }
    }

    fn limits(per_client: Option<Rate>, global: Option<Rate>, trusted: &str) -> RateLimits {
        RateLimits {
            inner: Arc::new(Inner {
                per_client,
                global,
                trusted_proxies: crate::config::parse_trusted_proxies(trusted).unwrap(),
                buckets: Mutex::default(),
            }),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_bucket_allows_a_burst_then_refills_evenly() {
        let l = limits(Some(rate(3, 60)), None, "none");
        let t0 = Instant::now();
        let client = ip("203.0.113.7");
        for _ in 0..3 {
            l.admit(Endpoint::Register, client, t0).unwrap();
        }
        let wait = l.admit(Endpoint::Register, client, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        // Other clients and other endpoints have their own buckets.
        l.admit(Endpoint::Register, ip("203.0.113.8"), t0).unwrap();
        l.admit(Endpoint::Token, client, t0).unwrap();
        // One token comes back every 20 s.
        assert!(
            l.admit(Endpoint::Register, client, t0 + Duration::from_secs(19))
                .is_err()
        );
        l.admit(Endpoint::Register, client, t0 + Duration::from_secs(40))
            .unwrap();
    }

    #[test]
    fn the_global_limit_counts_everyone() {
        let l = limits(Some(rate(100, 60)), Some(rate(2, 1)), "none");
        let t0 = Instant::now();
        l.admit(Endpoint::Token, ip("198.51.100.1"), t0).unwrap();
        l.admit(Endpoint::Token, ip("198.51.100.2"), t0).unwrap();
        assert!(l.admit(Endpoint::Token, ip("198.51.100.3"), t0).is_err());
        assert!(l.admit(Endpoint::Authorize, ip("198.51.100.3"), t0).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let l = limits(Some(rate(1, 60)), None, "none");
        let t0 = Instant::now();
        l.admit(Endpoint::Register, ip("2001:db8:1:2::1"), t0)
            .unwrap();
        assert!(
            l.admit(Endpoint::Register, ip("2001:db8:1:2:ffff::9"), t0)
                .is_err()
        );
        l.admit(Endpoint::Register, ip("2001:db8:1:3::1"), t0)
            .unwrap();
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = crate::config::parse_trusted_proxies("127.0.0.1,10.0.0.0/8").unwrap();
        let spoofed = forwarded(&["192.0.2.66"]);
        // Straight from the internet, X-Forwarded-For is the client's to invent.
        assert_eq!(
            client_address(ip("203.0.113.5"), &spoofed, &trusted),
            ip("203.0.113.5")
        );
        // Through the proxy: the address the proxy appended.
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded(&["203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
        // A client's own entries to the left do not count; trusted hops are skipped.
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                &forwarded(&["192.0.2.66, 203.0.113.5", "10.1.2.3"]),
                &trusted
            ),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded(&["203.0.113.5:4711"]), &trusted),
            ip("203.0.113.5")
        );
        // Without the header, or with garbage, the proxy itself is the client.
        assert_eq!(
            client_address(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded(&["unknown"]), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn full_buckets_are_forgotten_when_too_many_are_tracked() {
        let r = rate(1, 1);
        let t0 = Instant::now();
        let mut buckets = HashMap::new();
        buckets.insert(
            (Endpoint::Register, ip("192.0.2.1")),
            Bucket {
                tokens: 0.0,
                at: t0,
            },
        );
        buckets.insert((Endpoint::Register, ip("192.0.2.2")), Bucket::full(r, t0));
        forget_full(&mut buckets, r, t0);
        assert_eq!(buckets.len(), 1);
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        let response = too_many(Endpoint::Token, Duration::from_millis(1500));
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
