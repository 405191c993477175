//! The authenticated caller of `/mcp`: what the bearer check learns from a
//! token, what the token cache keeps, and what the MCP handlers act for.

use std::sync::Arc;

/// The authenticated caller, placed in the request's extensions. Cheap to
/// clone: it is copied out of the token cache on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    pub(crate) grant_id: Arc<str>,
    pub(crate) client_id: Arc<str>,
    /// The Forgejo user (their numeric id as text): the key of their child.
    pub(crate) user_id: Arc<str>,
}
