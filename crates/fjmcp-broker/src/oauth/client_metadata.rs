//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! a `client_id` that is an https URL naming a JSON document with the client's
//! metadata, fetched by the authorization server.
//!
//! Fetching a URL an anonymous party chose is a server-side request forgery
//! risk, so [`MetadataFetcher`]:
//!
//! - fetches only `https` URLs that pass [`is_metadata_document_url`] (plain
//!   `http` to a loopback address only under the test-only
//!   [`FetchPolicy::allow_loopback_http`]);
//! - resolves the host itself and refuses the fetch if **any** address is not
//!   public ([`is_public_address`]); the connection then goes only to the
//!   addresses that were vetted, because the HTTP client's DNS resolver *is*
//!   the vetting resolver, so DNS rebinding between check and connect cannot
//!   swap them. IP-literal hosts (which never reach a resolver) are vetted
//!   before the request. System proxies are ignored, since a proxy would
//!   resolve the name itself;
//! - does not follow redirects (a 3xx is [`FetchError::BadStatus`], as the
//!   draft requires), gives up after [`FetchPolicy::timeout`] in all, and reads
//!   the body incrementally, stopping past [`FetchPolicy::max_bytes`].
//!
//! The document must be a JSON object whose `client_id` equals the URL exactly,
//! must pass [`validate_registration`], and must describe a public client: a
//! document cannot carry a secret, so `client_secret` /
//! `client_secret_expires_at` are refused and `token_endpoint_auth_method`
//! must be `none` (or absent, which means `none`). The content type is not
//! checked (documents are often served as `text/plain` from static hosting);
//! the body must parse as JSON. `client_name` is required by the MCP
//! specification, but a document without one is accepted and the client is
//! named by the URL's host instead, which is what the draft says a consent
//! page should show in any case. Redirect URIs need not share the document's
//! origin (the draft allows it and Claude Code's document lists loopback
//! URIs).
//!
//! Results are not cached here; [`FetchedClient::cache_for`] says how long the
//! caller may keep one. Failures are remembered for a short while
//! ([`FetchPolicy::failure_cache`], per URL without its query, so a changing
//! query string does not defeat it): anyone can name a document URL, and
//! without this every authorization request with a failing one would make
//! the broker fetch again. The draft says errors must not be cached; a few
//! seconds of refusal is the price of not being a fetch amplifier. At most
//! [`FetchPolicy::max_concurrent`] fetches run at once; others wait for a
//! turn within the fetch timeout ([`FetchError::Busy`] after it).
//!
//! Error texts carry details (resolved addresses, TLS and connection errors)
//! for the log; [`FetchError::public_message`] is what an anonymous caller
//! may see.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::{ACCEPT, CACHE_CONTROL};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use super::redirect_uri::is_uri_char;
use super::registration::{ClientMetadata, TokenEndpointAuthMethod, validate_registration};

/// Longest client ID URL accepted, in bytes.
const MAX_CLIENT_ID_URL_LEN: usize = 2000;
/// Cache lifetime when the response says nothing.
const DEFAULT_CACHE_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest cache lifetime honoured.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Failures remembered at most; past that, expired ones are forgotten (and if
/// none has expired, all of them).
const MAX_REMEMBERED_FAILURES: usize = 10_000;

/// Whether `client_id` has the form of a client ID metadata document URL:
/// `https`, a host, a path other than `/`, no userinfo, no fragment, no dot
/// segments, at most [`MAX_CLIENT_ID_URL_LEN`] bytes, and written in
/// normalized form (so `HTTPS://…`, `https://example.com:443/…` and
/// `/a/../b` are not). A query is allowed (the draft says SHOULD NOT, not
/// MUST NOT).
#[cfg(test)]
fn is_metadata_document_url(client_id: &str) -> bool {
    parse_document_url(client_id).is_some_and(|url| url.scheme() == "https")
}

/// Parses a candidate document URL with every rule of
/// [`is_metadata_document_url`] but the scheme, which must be http or https.
fn parse_document_url(client_id: &str) -> Option<Url> {
    if client_id.len() > MAX_CLIENT_ID_URL_LEN
        || !client_id.bytes().all(is_uri_char)
        || client_id.contains('#')
    {
        return None;
    }
    let url = Url::parse(client_id).ok()?;
    let path_ok = url.path() != "/"
        && !url.path().split('/').any(|segment| {
            let lower = segment.to_ascii_lowercase();
            matches!(
                lower.as_str(),
                "." | ".." | "%2e" | "%2e." | ".%2e" | "%2e%2e"
            )
        });
    let ok = matches!(url.scheme(), "https" | "http")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && path_ok
        && url.as_str() == client_id;
    ok.then_some(url)
}

/// How documents are fetched.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// The whole fetch, from name resolution to the last body byte.
    pub timeout: Duration,
    /// The largest body read; a larger one is [`FetchError::TooLarge`]. The
    /// draft recommends 5 KB; the default leaves room for long redirect lists.
    pub max_bytes: usize,
    /// TEST ONLY: lets tests serve documents over plain http from loopback
    /// addresses (and lets loopback addresses pass the address check). Never
    /// set in production: it lets anyone make the broker call its own host.
    pub allow_loopback_http: bool,
    /// Most fetches in progress at once.
    pub max_concurrent: usize,
    /// How long a failed URL (without its query) is refused without a fetch;
    /// zero remembers nothing.
    pub failure_cache: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            allow_loopback_http: false,
            max_concurrent: 8,
            failure_cache: Duration::from_secs(30),
        }
    }
}

/// A fetched and validated document.
#[derive(Debug, Clone)]
pub struct FetchedClient {
    /// The validated metadata; `document` holds the document's members
    /// (including `client_id`), `client_name` falls back to the URL's host.
    pub metadata: ClientMetadata,
    /// How long the result may be cached ([`cache_lifetime`]).
    pub cache_for: Duration,
}

/// Why a document could not be used. None of these may be cached.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL, or an address its host resolves to, is not fetchable.
    #[error("client metadata document URL not allowed: {0}")]
    NotAllowed(String),
    /// Resolution, connection, TLS or the transfer failed or timed out.
    #[error("client metadata document unreachable: {0}")]
    Unreachable(String),
    /// Any status but 200, redirects included.
    #[error("client metadata document answered HTTP {0}")]
    BadStatus(u16),
    #[error("client metadata document is too large")]
    TooLarge,
    /// Not JSON, not an object, wrong `client_id`, or invalid metadata.
    #[error("client metadata document is invalid: {0}")]
    Invalid(String),
    /// The same URL failed moments ago; not fetched again yet.
    #[error("client metadata document failed recently; not fetched again yet")]
    RecentlyFailed,
    /// Too many fetches in progress; no turn came within the timeout.
    #[error("too many client metadata documents are being fetched")]
    Busy,
}

impl FetchError {
    /// What an anonymous caller may be told: which kind of failure, never
    /// the addresses a name resolves to or a connection's error details.
    pub fn public_message(&self) -> &'static str {
        match self {
            FetchError::NotAllowed(_) => "its URL is not one the broker fetches",
            FetchError::Unreachable(_) | FetchError::BadStatus(_) => "it could not be fetched",
            FetchError::TooLarge => "it is too large",
            FetchError::Invalid(_) => "it is not a valid client metadata document",
            FetchError::RecentlyFailed => "it failed moments ago; try again shortly",
            FetchError::Busy => "the broker is busy; try again shortly",
        }
    }
}

/// Fetches client ID metadata documents. Cheap to clone (one shared HTTP
/// client and connection pool).
#[derive(Clone)]
pub struct MetadataFetcher {
    policy: FetchPolicy,
    http: reqwest::Client,
    /// Turns to fetch ([`FetchPolicy::max_concurrent`]).
    turns: Arc<Semaphore>,
    /// Fetches waiting for a turn.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Until when a URL (without query) that failed is refused.
    failures: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for MetadataFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataFetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl MetadataFetcher {
    /// # Panics
    /// If the TLS backend cannot be initialised (a broken build, not a runtime
    /// condition).
    pub fn new(policy: FetchPolicy) -> Self {
        let resolver = VettingResolver {
            allow_loopback: policy.allow_loopback_http,
        };
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!policy.allow_loopback_http)
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("fjmcp-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client for client metadata documents could not be built");
        let turns = Arc::new(Semaphore::new(policy.max_concurrent.max(1)));
        MetadataFetcher {
            policy,
            http,
            turns,
            queued: Arc::default(),
            failures: Arc::default(),
        }
    }

    /// Whether this fetcher would try `client_id` at all: what
    /// [`is_metadata_document_url`] says, plus loopback `http` URLs when the
    /// policy allows them (tests). Use it to tell document client ids from
    /// registered ones.
    pub fn handles(&self, client_id: &str) -> bool {
        self.check_url(client_id).is_ok()
    }

    /// Fetches and validates the document at `client_id`.
    pub async fn fetch(&self, client_id: &str) -> Result<FetchedClient, FetchError> {
        let url = self.check_url(client_id)?;
        let key = failure_key(&url);
        if self
            .failures
            .lock()
            .get(&key)
            .is_some_and(|until| *until > Instant::now())
        {
            return Err(FetchError::RecentlyFailed);
        }
        use std::sync::atomic::Ordering;
        self.queued.fetch_add(1, Ordering::Relaxed);
        let turn =
            tokio::time::timeout(self.policy.timeout, self.turns.clone().acquire_owned()).await;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let Ok(Ok(_turn)) = turn else {
            return Err(FetchError::Busy);
        };
        let result =
            match tokio::time::timeout(self.policy.timeout, self.fetch_checked(client_id, &url))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(FetchError::Unreachable(format!(
                    "no complete answer within {:?}",
                    self.policy.timeout
                ))),
            };
        if result.is_err() && !self.policy.failure_cache.is_zero() {
            self.remember_failure(key);
        }
        result
    }

    /// How many fetches wait for a turn right now.
    pub fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn remember_failure(&self, key: String) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_REMEMBERED_FAILURES {
            failures.retain(|_, until| *until > now);
            if failures.len() >= MAX_REMEMBERED_FAILURES {
                failures.clear();
            }
        }
        failures.insert(key, now + self.policy.failure_cache);
    }

    fn check_url(&self, client_id: &str) -> Result<Url, FetchError> {
        let url = parse_document_url(client_id).ok_or_else(|| {
            FetchError::NotAllowed(
                "not an https URL with a path, in normalized form, without userinfo, \
                 fragment or dot segments"
                    .to_string(),
            )
        })?;
        if url.scheme() == "http" {
            let loopback_literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            };
            if !(self.policy.allow_loopback_http && loopback_literal) {
                return Err(FetchError::NotAllowed("only https URLs are fetched".into()));
            }
        }
        // IP literals never reach the resolver: vet them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !address_allowed(ip, self.policy.allow_loopback_http)
        {
            return Err(FetchError::NotAllowed(format!(
                "{ip} is not a public address"
            )));
        }
        Ok(url)
    }

    async fn fetch_checked(&self, client_id: &str, url: &Url) -> Result<FetchedClient, FetchError> {
        let mut response = self
            .http
            .get(url.as_str())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::BadStatus(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.policy.max_bytes as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let cache_for = cache_lifetime(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > self.policy.max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let metadata = parse_document(client_id, url, &body)?;
        Ok(FetchedClient {
            metadata,
            cache_for,
        })
    }
}

/// What failures are remembered under: the URL without its query (and
/// fragment, which a document URL cannot have anyway).
fn failure_key(url: &Url) -> String {
    let mut key = url.clone();
    key.set_query(None);
    key.set_fragment(None);
    key.to_string()
}

/// Validates a fetched body as the document for `client_id`.
fn parse_document(client_id: &str, url: &Url, body: &[u8]) -> Result<ClientMetadata, FetchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::Invalid(format!("not JSON: {e}")))?;
    let Value::Object(members) = &value else {
        return Err(FetchError::Invalid("not a JSON object".into()));
    };
    match members.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(_)) => {
            return Err(FetchError::Invalid(
                "its client_id is not the URL it was fetched from".into(),
            ));
        }
        _ => return Err(FetchError::Invalid("client_id is missing".into())),
    }
    for name in ["client_secret", "client_secret_expires_at"] {
        if members.contains_key(name) {
            return Err(FetchError::Invalid(format!(
                "{name} is not allowed in a metadata document"
            )));
        }
    }
    let mut metadata =
        validate_registration(&value).map_err(|e| FetchError::Invalid(e.to_string()))?;
    if metadata.token_endpoint_auth_method != TokenEndpointAuthMethod::None {
        return Err(FetchError::Invalid(
            "token_endpoint_auth_method must be \"none\": a metadata document cannot carry a secret"
                .into(),
        ));
    }
    metadata
        .document
        .insert("client_id".into(), client_id.into());
    if metadata.client_name.is_none() {
        metadata.client_name = url.host_str().map(str::to_string);
    }
    Ok(metadata)
}

/// How long a fetched document may be cached: `Cache-Control: max-age=N`
/// (the smallest, if several), zero for `no-store` or `no-cache` or a
/// malformed `max-age`, one hour when there is no `max-age`; clamped to
/// [0, 24 h]. `s-maxage` and `Expires` are ignored.
fn cache_lifetime(headers: &HeaderMap) -> Duration {
    let mut max_age: Option<u64> = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            return Duration::ZERO;
        };
        for directive in text.split(',') {
            let directive = directive.trim();
            let (name, argument) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Duration::ZERO;
            }
            if name.eq_ignore_ascii_case("max-age") {
                let digits = argument.unwrap_or("").trim_matches('"');
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Duration::ZERO;
                }
                // Overlong numbers are "infinite", then clamped.
                let seconds = digits.parse::<u64>().unwrap_or(u64::MAX);
                max_age = Some(max_age.map_or(seconds, |m| m.min(seconds)));
            }
        }
    }
    match max_age {
        None => DEFAULT_CACHE_LIFETIME,
        Some(seconds) => Duration::from_secs(seconds).min(MAX_CACHE_LIFETIME),
    }
}

/// Whether `ip` is an ordinary public unicast address, fit to fetch from.
///
/// Refused IPv4: 0.0.0.0/8, 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16
/// (link-local, cloud metadata), 172.16/12, 192.0.0/24, 192.0.2/24,
/// 192.88.99/24 (6to4 relay), 192.168/16, 198.18/15, 198.51.100/24,
/// 203.0.113/24, 224/4 (multicast), 240/4 (reserved, broadcast).
///
/// IPv6 is public only inside 2000::/3 (global unicast), minus 2001::/23
/// (IETF protocol assignments, Teredo, ORCHID), 2001:db8::/32 and 3fff::/20
/// (documentation), 2002::/16 (6to4, which embeds an IPv4 address); and
/// besides, IPv4-mapped `::ffff:a.b.c.d` and NAT64 `64:ff9b::a.b.c.d` are
/// judged by their IPv4 address. Everything else (`::`, `::1`, fc00::/7,
/// fe80::/10, fec0::/10, ff00::/8, 64:ff9b:1::/48, 100::/64, …) is refused.
fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || (a == 100 && (64..128).contains(&b))
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 192 && b == 88 && c == 99)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // ::ffff:a.b.c.d (IPv4-mapped).
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    global_unicast
        && !(s[0] == 0x2001 && s[1] < 0x200)
        && !(s[0] == 0x2001 && s[1] == 0x0db8)
        && s[0] != 0x2002
        && s[0] & 0xfff0 != 0x3ff0
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    is_public_address(ip) || (allow_loopback && ip.is_loopback())
}

/// The resolver refused a name because of an address it resolved to.
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves to {ip}, which is not a public address")]
struct AddressRefused {
    name: String,
    ip: IpAddr,
}

/// The HTTP client's only resolver: resolves with the system resolver and
/// refuses the name unless every address is allowed; the connection then uses
/// exactly the addresses returned here.
struct VettingResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{name} has no addresses").into());
            }
            if let Some(bad) = addrs
                .iter()
                .find(|a| !address_allowed(a.ip(), allow_loopback))
            {
                return Err(Box::new(AddressRefused { name, ip: bad.ip() })
                    as Box<dyn StdError + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Maps a transport error, telling a refused address from an unreachable host.
fn transport_error(error: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    let mut chain = Vec::new();
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return FetchError::NotAllowed(refused.to_string());
        }
        let text = e.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        source = e.source();
    }
    if error.is_timeout() {
        return FetchError::Unreachable("timed out".into());
    }
    FetchError::Unreachable(chain.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn public_addresses() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ];
        for text in public {
            let ip: IpAddr = text.parse().unwrap();
            assert!(is_public_address(ip), "{text} should be public");
        }
    }

    #[test]
    fn non_public_addresses() {
        let refused = [
            // IPv4 special-use.
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 special-use.
            "::",
            "::1",
            "::2",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:0:0",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:10::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:808:808::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "4000::1",
            "1000::1",
            "fd00:ec2::254",
        ];
        for text in refused {
            let ip: IpAddr = text.parse().unwrap();
            assert!(!is_public_address(ip), "{text} should not be public");
        }
    }

    #[test]
    fn document_urls() {
        for ok in [
            "https://claude.ai/oauth/claude-code-client-metadata",
            "https://claude.ai/oauth/mcp-oauth-client-metadata",
            "https://example.com/client.json",
            "https://example.com:8443/client",
            "https://example.com/client?v=1",
            "https://example.com/a/b/",
            "https://203.0.113.5/client",
        ] {
            assert!(is_metadata_document_url(ok), "{ok}");
        }
        for bad in [
            "",
            "client-123",
            "https://example.com",
            "https://example.com/",
            "https://example.com/?x=1",
            "http://example.com/client",
            "HTTPS://example.com/client",
            "https://EXAMPLE.com/client",
            "https://example.com:443/client",
            "https://example.com/client#frag",
            "https://example.com/client#",
            "https://user@example.com/client",
            "https://user:pw@example.com/client",
            "https://example.com/a/../client",
            "https://example.com/./client",
            "https://example.com/a/%2e%2e/client",
            "https://example.com/a/%2E/client",
            "https://example.com/a/.%2e/client",
            "https://example.com/a/..",
            " https://example.com/client",
            "https://example.com/cli ent",
            "https://example.com/cli\\ent",
            "https://example.com/a|b",
            "https://exämple.com/client",
            "https:///client",
            "https:example.com/client",
            "ftp://example.com/client",
            "javascript:alert(1)",
            "data:application/json,{}",
        ] {
            assert!(!is_metadata_document_url(bad), "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_CLIENT_ID_URL_LEN));
        assert!(!is_metadata_document_url(&long));
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn cache_lifetimes() {
        let secs = Duration::from_secs;
        assert_eq!(cache_lifetime(&HeaderMap::new()), secs(3600));
        assert_eq!(cache_lifetime(&headers(&["max-age=600"])), secs(600));
        assert_eq!(
            cache_lifetime(&headers(&["public, max-age=120"])),
            secs(120)
        );
        assert_eq!(cache_lifetime(&headers(&["Max-Age=60"])), secs(60));
        assert_eq!(cache_lifetime(&headers(&["max-age=\"90\""])), secs(90));
        assert_eq!(cache_lifetime(&headers(&["max-age = 30"])), secs(30));
        assert_eq!(cache_lifetime(&headers(&["max-age=0"])), Duration::ZERO);
        assert_eq!(cache_lifetime(&headers(&["max-age=999999"])), secs(86400));
        assert_eq!(
            cache_lifetime(&headers(&["max-age=99999999999999999999999999"])),
            secs(86400)
        );
        assert_eq!(cache_lifetime(&headers(&["max-age=-5"])), Duration::ZERO);
        assert_eq!(cache_lifetime(&headers(&["max-age=abc"])), Duration::ZERO);
        assert_eq!(cache_lifetime(&headers(&["max-age"])), Duration::ZERO);
        assert_eq!(cache_lifetime(&headers(&["no-store"])), Duration::ZERO);
        assert_eq!(
            cache_lifetime(&headers(&["max-age=600, no-cache"])),
            Duration::ZERO
        );
        assert_eq!(
            cache_lifetime(&headers(&["max-age=600", "No-Store"])),
            Duration::ZERO
        );
        assert_eq!(cache_lifetime(&headers(&["s-maxage=60"])), secs(3600));
        assert_eq!(
            cache_lifetime(&headers(&["s-maxage=60, max-age=300"])),
            secs(300)
        );
        assert_eq!(
            cache_lifetime(&headers(&["max-age=300", "max-age=200"])),
            secs(200)
        );
        assert_eq!(cache_lifetime(&headers(&["private"])), secs(3600));
        let mut map = HeaderMap::new();
        map.insert(
            http::header::EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(cache_lifetime(&map), secs(3600));
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn document_parsing() {
        let id = "https://example.com/client";
        let good = serde_json::json!({
            "client_id": id,
            "client_name": "Example",
            "redirect_uris": ["http://localhost/callback"],
        });
        let m = parse_document(id, &url(id), good.to_string().as_bytes()).unwrap();
        assert_eq!(m.client_name.as_deref(), Some("Example"));
        assert_eq!(m.document["client_id"], id);
        assert_eq!(m.token_endpoint_auth_method, TokenEndpointAuthMethod::None);

        let unnamed =
            serde_json::json!({"client_id": id, "redirect_uris": ["https://example.com/cb"]});
        let m = parse_document(id, &url(id), unnamed.to_string().as_bytes()).unwrap();
        assert_eq!(m.client_name.as_deref(), Some("example.com"));
        assert!(!m.document.contains_key("client_name"));

        let invalid = [
            serde_json::json!([]),
            serde_json::json!({"redirect_uris": ["https://example.com/cb"]}),
            serde_json::json!({"client_id": 1, "redirect_uris": ["https://example.com/cb"]}),
            serde_json::json!({"client_id": "https://example.com/client/", "redirect_uris": ["https://example.com/cb"]}),
            serde_json::json!({"client_id": "https://EXAMPLE.com/client", "redirect_uris": ["https://example.com/cb"]}),
            serde_json::json!({"client_id": id, "redirect_uris": ["https://example.com/cb"], "client_secret": "x"}),
            serde_json::json!({"client_id": id, "redirect_uris": ["https://example.com/cb"], "client_secret_expires_at": 0}),
            serde_json::json!({"client_id": id, "redirect_uris": ["https://example.com/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            serde_json::json!({"client_id": id, "redirect_uris": ["https://example.com/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            serde_json::json!({"client_id": id, "redirect_uris": ["http://evil.example/cb"]}),
            serde_json::json!({"client_id": id}),
        ];
        for doc in invalid {
            let result = parse_document(id, &url(id), doc.to_string().as_bytes());
            assert!(
                matches!(result, Err(FetchError::Invalid(_))),
                "{doc}: {result:?}"
            );
        }
        assert!(matches!(
            parse_document(id, &url(id), b"<html>"),
            Err(FetchError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn refused_before_any_connection() {
        let fetcher = MetadataFetcher::new(FetchPolicy::default());
        for id in [
            "http://example.com/client",
            "https://127.0.0.1/client",
            "https://[::1]/client",
            "https://10.0.0.1/client",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:127.0.0.1]/client",
            "https://[fd00::1]/client",
            "not a url",
        ] {
            let result = fetcher.fetch(id).await;
            assert!(
                matches!(result, Err(FetchError::NotAllowed(_))),
                "{id}: {result:?}"
            );
            assert!(!fetcher.handles(id), "{id}");
        }
        assert!(fetcher.handles("https://claude.ai/oauth/claude-code-client-metadata"));
    }
}
