//! Prometheus metrics: one process-wide registry of counters, gauges and
//! histograms, recorded where things happen and served at `/metrics` on the
//! metrics listener (`--metrics-listen`).
//!
//! Recording is an atomic add (a family lookup under a read lock at most), so
//! the hot path can afford it. Every label value comes from a fixed set named
//! in this file — routes, eras, method classes, outcomes, reasons — never a
//! user, a client or a token: the cardinality is bounded whatever the traffic.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Two label pairs, both from fixed sets.
type Labels2 = [(&'static str, &'static str); 2];
/// One label pair from a fixed set.
type Labels1 = [(&'static str, &'static str); 1];

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

/// Every metric the broker exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    http_requests: Family<Labels2, Counter>,
    http_duration: Family<Labels1, Histogram, fn() -> Histogram>,
    mcp_requests: Family<Labels2, Counter>,
    oauth_events: Family<Labels1, Counter>,
    upstream_requests: Family<Labels2, Counter>,
    upstream_duration: Family<Labels1, Histogram, fn() -> Histogram>,
    children: Gauge,
    children_started: Counter,
    children_stopped: Family<Labels1, Counter>,
    child_start_duration: Histogram,
    child_in_flight: Histogram,
    sessions: Gauge,
    store_errors: Counter<u64, AtomicU64>,
}

/// The process's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fjmcp");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            mcp_requests: Family::default(),
            oauth_events: Family::default(),
            upstream_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(latency_histogram),
            children: Gauge::default(),
            children_started: Counter::default(),
            children_stopped: Family::default(),
            child_start_duration: latency_histogram(),
            child_in_flight: Histogram::new([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            sessions: Gauge::default(),
            store_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status class",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response's head, by route (a stream's lifetime is not included)",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "mcp_requests",
            "Messages posted to /mcp, by protocol era and method class",
            m.mcp_requests.clone(),
        );
        registry.register(
            "oauth_events",
            "Authorization-server events: clients registered, authorizations started and completed, consents given and denied, tokens issued, refreshes, refresh-token reuse detected, grants revoked",
            m.oauth_events.clone(),
        );
        registry.register(
            "upstream_requests",
            "Calls to Forgejo about users' tokens (refresh, check), by outcome",
            m.upstream_requests.clone(),
        );
        registry.register_with_unit(
            "upstream_request_duration",
            "Time Forgejo took to answer a refresh or a token check",
            Unit::Seconds,
            m.upstream_duration.clone(),
        );
        registry.register(
            "children",
            "Child processes alive (one per active user, plus replaced ones still draining)",
            m.children.clone(),
        );
        registry.register(
            "children_started",
            "Children started (handshake completed)",
            m.children_started.clone(),
        );
        registry.register(
            "children_stopped",
            "Children stopped, by reason",
            m.children_stopped.clone(),
        );
        registry.register_with_unit(
            "child_start_duration",
            "Time from spawning a child to its initialize result",
            Unit::Seconds,
            m.child_start_duration.clone(),
        );
        registry.register(
            "child_in_flight_requests",
            "Requests already in flight on a user's child when another is admitted",
            m.child_in_flight.clone(),
        );
        registry.register(
            "sessions",
            "Live 2025-era MCP sessions (all instances)",
            m.sessions.clone(),
        );
        registry.register(
            "store_errors",
            "Failed database operations",
            m.store_errors.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in Prometheus's text exposition format (0.0.4), which every
    /// scraper and `promtool` read.
    pub(crate) fn encode(&self) -> String {
        let mut open_metrics = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut open_metrics, &self.registry);
        to_prometheus_text(&open_metrics)
    }

    pub(crate) fn http_request(&self, route: &'static str, status: u16, took: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_requests
            .get_or_create(&[("route", route), ("status_class", class)])
            .inc();
        self.http_duration
            .get_or_create(&[("route", route)])
            .observe(took.as_secs_f64());
    }

    pub(crate) fn mcp_request(&self, era: &'static str, method_class: &'static str) {
        self.mcp_requests
            .get_or_create(&[("era", era), ("method_class", method_class)])
            .inc();
    }

    pub(crate) fn oauth_event(&self, event: OAuthEvent) {
        self.oauth_events
            .get_or_create(&[("event", event.as_str())])
            .inc();
    }

    pub(crate) fn upstream_request(
        &self,
        call: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.upstream_requests
            .get_or_create(&[("call", call), ("outcome", outcome)])
            .inc();
        self.upstream_duration
            .get_or_create(&[("call", call)])
            .observe(took.as_secs_f64());
    }

    pub(crate) fn set_children(&self, live: usize) {
        self.children.set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    pub(crate) fn child_started(&self, took: Duration) {
        self.children_started.inc();
        self.child_start_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn child_stopped(&self, reason: StopReason) {
        self.children_stopped
            .get_or_create(&[("reason", reason.as_str())])
            .inc();
    }

    pub(crate) fn child_admitted(&self, already_in_flight: usize) {
        self.child_in_flight.observe(already_in_flight as f64);
    }

    pub(crate) fn set_sessions(&self, live: i64) {
        self.sessions.set(live);
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.inc();
    }
}

/// The library writes OpenMetrics, where a counter family is named without its
/// `_total` suffix and units and an end marker are extra lines. Prometheus's
/// text format names the counter with the suffix and has neither.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// What happened at the authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OAuthEvent {
    ClientRegistered,
    AuthorizationStarted,
    AuthorizationCompleted,
    ConsentGiven,
    ConsentDenied,
    TokensIssued,
    Refreshed,
    RefreshReuseDetected,
    GrantRevoked,
}

impl OAuthEvent {
    fn as_str(self) -> &'static str {
        match self {
            OAuthEvent::ClientRegistered => "client_registered",
            OAuthEvent::AuthorizationStarted => "authorization_started",
            OAuthEvent::AuthorizationCompleted => "authorization_completed",
            OAuthEvent::ConsentGiven => "consent_given",
            OAuthEvent::ConsentDenied => "consent_denied",
            OAuthEvent::TokensIssued => "tokens_issued",
            OAuthEvent::Refreshed => "refreshed",
            OAuthEvent::RefreshReuseDetected => "refresh_reuse_detected",
            OAuthEvent::GrantRevoked => "grant_revoked",
        }
    }
}

/// Why a child was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Idle,
    /// Replaced by a child with a newer credential.
    Rotation,
    /// Exited on its own while it was serving.
    Crash,
    CredentialDead,
    Shutdown,
}

impl StopReason {
    fn as_str(self) -> &'static str {
        match self {
            StopReason::Idle => "idle",
            StopReason::Rotation => "rotation",
            StopReason::Crash => "crash",
            StopReason::CredentialDead => "credential_dead",
            StopReason::Shutdown => "shutdown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_their_suffix_and_open_metrics_extras_go() {
        let open_metrics = "# HELP fjmcp_x Xs.\n# TYPE fjmcp_x counter\nfjmcp_x_total 3\n\
                            # HELP fjmcp_d D.\n# TYPE fjmcp_d histogram\n# UNIT fjmcp_d seconds\n\
                            fjmcp_d_count 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(open_metrics),
            "# HELP fjmcp_x_total Xs.\n# TYPE fjmcp_x_total counter\nfjmcp_x_total 3\n\
             # HELP fjmcp_d D.\n# TYPE fjmcp_d histogram\nfjmcp_d_count 1\n"
        );
    }
}
