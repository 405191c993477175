//! What build this is, for `--version`, logs and `/healthz`.

/// The crate version.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (`unknown` outside a checkout).
pub(crate) const GIT_REVISION: &str = env!("FJMCP_GIT_REVISION");

/// `0.1.0 (abc123def456)`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FJMCP_GIT_REVISION"),
    ")"
);
