//! Injected failures and the per-endpoint call log, so tests can make Forgejo misbehave on
//! purpose and then assert how often the code under test called it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// An HTTP endpoint of the double that faults can be injected into and whose calls are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /login/oauth/authorize` (not the login and consent form posts).
    Authorize,
    /// `POST /login/oauth/access_token`.
    Token,
    /// `GET`/`POST /login/oauth/userinfo`.
    Userinfo,
    /// `GET /api/v1/user`.
    ApiUser,
    /// `GET /api/v1/version`.
    ApiVersion,
    /// `GET /.well-known/openid-configuration`.
    Discovery,
}

impl Endpoint {
    /// Every endpoint, for reports such as `/_double/stats`.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Userinfo,
        Endpoint::ApiUser,
        Endpoint::ApiVersion,
        Endpoint::Discovery,
    ];

    /// The snake_case name used by the `/_double/` control API.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
            Endpoint::Userinfo => "userinfo",
            Endpoint::ApiUser => "api_user",
            Endpoint::ApiVersion => "api_version",
            Endpoint::Discovery => "discovery",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// Parses the names returned by [`Endpoint::name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Endpoint::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown endpoint {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How an endpoint misbehaves for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 without touching any state, as an overloaded or broken Forgejo would.
    ServerError,
    /// Answer 400 `{"error":"invalid_grant"}` without touching any state.
    InvalidGrant,
    /// Answer 400 `{"error":"unauthorized_client"}` without touching any state.
    UnauthorizedClient,
    /// Wait this long, then serve the request normally (timeouts, slow upstream).
    Delay(Duration),
    /// Serve the request normally (a refresh *does* rotate the tokens) but answer 500, as when
    /// Forgejo committed the change and the response was lost on the way back.
    ServerErrorAfterProcessing,
}

/// Pending faults and call counters, per endpoint.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    /// Guarded together so a call is counted and its fault taken atomically.
    inner: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    /// Faults still to be served, oldest first, each with how many more calls it applies to.
    /// Stored as counts, not copies, so `times = u32::MAX` costs nothing.
    pending: HashMap<Endpoint, VecDeque<(Fault, u32)>>,
    /// Requests received per endpoint, faulted ones included.
    calls: HashMap<Endpoint, u64>,
}

impl FaultBook {
    /// Makes the next `times` calls of `endpoint` fail with `fault`, after any faults already
    /// queued for it.
    pub(crate) fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        self.lock()
            .pending
            .entry(endpoint)
            .or_default()
            .push_back((fault, times));
    }

    /// Drops every pending fault.
    pub(crate) fn clear(&self) {
        self.lock().pending.clear();
    }

    /// Counts one call of `endpoint` and returns the fault it must suffer, if any.
    pub(crate) fn on_call(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut book = self.lock();
        *book.calls.entry(endpoint).or_default() += 1;
        let queue = book.pending.get_mut(&endpoint)?;
        let (fault, remaining) = queue.front_mut()?;
        let fault = *fault;
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    /// How many requests `endpoint` has received.
    pub(crate) fn calls(&self, endpoint: Endpoint) -> u64 {
        self.lock().calls.get(&endpoint).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_served_in_order_then_calls_succeed() {
        let book = FaultBook::default();
        book.inject(Endpoint::Token, Fault::ServerError, 2);
        book.inject(Endpoint::Token, Fault::InvalidGrant, 1);
        book.inject(Endpoint::Token, Fault::UnauthorizedClient, 0);
        assert_eq!(book.on_call(Endpoint::Userinfo), None);
        assert_eq!(book.on_call(Endpoint::Token), Some(Fault::ServerError));
        assert_eq!(book.on_call(Endpoint::Token), Some(Fault::ServerError));
        assert_eq!(book.on_call(Endpoint::Token), Some(Fault::InvalidGrant));
        assert_eq!(book.on_call(Endpoint::Token), None);
        assert_eq!(book.calls(Endpoint::Token), 4);
        assert_eq!(book.calls(Endpoint::Userinfo), 1);
        assert_eq!(book.calls(Endpoint::Discovery), 0);
    }

    #[test]
    fn names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(endpoint.name().parse::<Endpoint>(), Ok(endpoint));
        }
        assert!("nope".parse::<Endpoint>().is_err());
    }
}
