//! The broker's own account of a new user's first response, read from its
//! Prometheus metrics: how long Forgejo took to answer the token check it makes
//! before starting a child, and how long the child took from spawn to its
//! `initialize` result. The rest of the first response is the broker's own work.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use tokio::time::Duration;

use crate::load::Connection;

/// Forgejo's answer to the broker's token check (`GET /api/v1/user`).
const CHECK_SUM: &str = "fjmcp_upstream_request_duration_seconds_sum{call=\"check\"}";
const CHECK_COUNT: &str = "fjmcp_upstream_request_duration_seconds_count{call=\"check\"}";
/// A child's spawn to its `initialize` result, inside the broker.
const CHILD_SUM: &str = "fjmcp_child_start_duration_seconds_sum";
const CHILD_COUNT: &str = "fjmcp_child_start_duration_seconds_count";

/// The broker's timing totals at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    check: (f64, f64),
    child_start: (f64, f64),
}

/// Means over what happened between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Means {
    /// Forgejo's answer to one token check.
    pub(crate) forgejo_check: Option<Duration>,
    /// One child's spawn to its `initialize` result.
    pub(crate) child_start: Option<Duration>,
}

/// Reads the broker's metrics at `addr`.
pub(crate) async fn read(addr: SocketAddr) -> Result<Totals> {
    let mut connection = Connection::open(addr).await?;
    let (status, body) = connection
        .get_body("/metrics", &addr.to_string())
        .await
        .context("read the broker's metrics")?;
    if !status.is_success() {
        bail!("the broker's /metrics answered {status}");
    }
    Ok(parse(&String::from_utf8_lossy(&body)))
}

fn parse(text: &str) -> Totals {
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Totals {
        check: (value(CHECK_SUM), value(CHECK_COUNT)),
        child_start: (value(CHILD_SUM), value(CHILD_COUNT)),
    }
}

impl Totals {
    /// The mean of each timing over what happened since `before`.
    pub(crate) fn since(&self, before: &Totals) -> Means {
        let mean = |(sum, count): (f64, f64), (sum0, count0): (f64, f64)| {
            let n = count - count0;
            (n > 0.0).then(|| Duration::from_secs_f64((sum - sum0).max(0.0) / n))
        };
        Means {
            forgejo_check: mean(self.check, before.check),
            child_start: mean(self.child_start, before.child_start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_taken_over_the_samples_between_two_readings() {
        let before = parse(
            "fjmcp_upstream_request_duration_seconds_sum{call=\"check\"} 1.0\n\
             fjmcp_upstream_request_duration_seconds_count{call=\"check\"} 10\n\
             fjmcp_upstream_request_duration_seconds_sum{call=\"refresh\"} 9.0\n\
             fjmcp_child_start_duration_seconds_sum 2.0\n\
             fjmcp_child_start_duration_seconds_count 4\n",
        );
        let after = parse(
            "fjmcp_upstream_request_duration_seconds_sum{call=\"check\"} 1.003\n\
             fjmcp_upstream_request_duration_seconds_count{call=\"check\"} 12\n\
             fjmcp_child_start_duration_seconds_sum 2.004\n\
             fjmcp_child_start_duration_seconds_count 6\n",
        );
        let means = after.since(&before);
        let micros = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6).unwrap();
        assert!((micros(means.forgejo_check) - 1500.0).abs() < 0.01);
        assert!((micros(means.child_start) - 2000.0).abs() < 0.01);
        assert_eq!(after.since(&after).forgejo_check, None, "no samples");
    }
}
