//! Unguessable identifiers: tokens, codes, session and consent ids.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The operating system's random source failed; nothing sensible can be issued.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub(crate) struct RandomUnavailable(getrandom::Error);

/// `prefix` followed by 256 random bits, base64url without padding. The prefixes (`fgj_at_`,
/// `fgj_rt_`, …) make tokens recognisable in test output; clients must treat them as opaque.
pub(crate) fn token(prefix: &str) -> Result<String, RandomUnavailable> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(RandomUnavailable)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}
