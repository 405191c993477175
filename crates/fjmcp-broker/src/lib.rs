//! fjmcp-broker: an OAuth 2.1 authorization server and Streamable HTTP MCP
//! endpoint in front of one stdio MCP child per Forgejo user.
//!
//! Start with `ARCHITECTURE.md` at the repository root: it maps each concern to
//! its module and states what each module must not know. Items are `pub` only
//! when the binary or the integration tests use them.

mod account;
pub mod admin;
mod backoff;
pub mod children;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod forgejo;
pub mod http;
pub mod mcp;
mod metrics;
pub mod oauth;
pub mod server;
mod shared;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod version;
