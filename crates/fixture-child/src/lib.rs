//! A stdio MCP server of the 2025 era (initialize handshake, protocol 2025-11-25) that stands in
//! for forgejo-mcp in fjmcp-broker's tests.
//!
//! It offers the official conformance suite's fixture tools, resources and prompts (so the suite
//! can run through the broker) and a few tools for the broker's own tests: `whoami`,
//! `env_names`, `sleep`, `crash`, `trigger_list_changed`, `echo`. Like forgejo-mcp it checks its
//! Forgejo token at start-up when `FORGEJO_URL` is set, speaks newline-delimited JSON-RPC on
//! stdin/stdout and logs on stderr only.
//!
//! Code map: [`protocol`] frames JSON-RPC; [`server`] runs the read/dispatch/write loop and
//! cancellation; [`peer`] is the client as handlers see it (notifications, server→client
//! requests, capabilities); [`lifecycle`], [`tools`], [`resources`], [`prompts`],
//! [`completion`] and [`mrtr`] implement the MCP methods; [`forgejo`] is the only code that
//! talks HTTP.

#![forbid(unsafe_code)]

pub mod completion;
pub mod content;
pub mod forgejo;
pub mod lifecycle;
pub mod mrtr;
pub mod peer;
pub mod prompts;
pub mod protocol;
pub mod resources;
pub mod seal;
pub mod server;
pub mod tools;

use std::time::Duration;

pub use server::serve;

/// Process-wide settings, fixed at start-up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Treat the client as having declared sampling, elicitation and roots even if its
    /// `initialize` did not. A broker that initializes its child with empty capabilities but
    /// relays server→client requests to its own clients needs this for the sampling and
    /// elicitation fixtures.
    pub assume_client_capabilities: bool,
    /// Never answer `initialize` (for the broker's handshake-timeout tests).
    pub ignore_initialize: bool,
    /// How long a server→client request (sampling, elicitation) may wait for its answer.
    pub client_request_timeout: Duration,
    /// The Forgejo client, present when `FORGEJO_URL` (or `--url`) is set.
    pub forgejo: Option<forgejo::Forgejo>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            assume_client_capabilities: false,
            ignore_initialize: false,
            client_request_timeout: Duration::from_secs(60),
            forgejo: None,
        }
    }
}
