//! Fixtures shared by the integration tests.
#![allow(dead_code, unreachable_pub)]
// Tests read their own settings (FJMCP_TEST_POSTGRES_URL, PATH) from the environment.
#![allow(clippy::disallowed_methods)]

pub mod broker;
pub mod children;
pub mod databases;
pub mod mcp;
pub mod oauth;
pub mod pair;
pub mod wait;
