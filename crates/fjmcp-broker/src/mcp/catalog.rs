//! What the broker speaks: the protocol revisions of each era and the methods
//! it answers, forwards or refuses. One table per decision, so the era rules
//! (`era.rs`), the 2026-07-28 ladder (`modern.rs`) and the answers the broker
//! writes itself (`decorate.rs`) never disagree.

/// The stateless revision this broker serves.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";

/// Modern revisions this broker implements: what `server/discover` lists and
/// what -32022 names as `supported`. Only modern ones, so a client never picks
/// a handshake version for a stateless request.
pub(crate) const SUPPORTED_MODERN_VERSIONS: [&str; 1] = [MODERN_VERSION];

/// 2025-era revisions this broker serves through `initialize`, newest first.
pub(crate) const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The legacy version offered when a client asks for one not in
/// [`LEGACY_VERSIONS`].
const LATEST_LEGACY_VERSION: &str = LEGACY_VERSIONS[0];

/// The version assumed for legacy traffic without an `MCP-Protocol-Version`
/// header (the header first appeared in 2025-06-18).
pub(crate) const DEFAULT_LEGACY_HEADER_VERSION: &str = "2025-03-26";

/// Whether `version` is a modern revision this broker implements.
pub(crate) fn is_supported_modern_version(version: &str) -> bool {
    SUPPORTED_MODERN_VERSIONS.contains(&version)
}

/// Whether `version` names the stateless era: a `YYYY-MM-DD` revision on or
/// after 2026-07-28 (see the module notes).
pub(crate) fn is_modern_era_version(version: &str) -> bool {
    let b = version.as_bytes();
    let date_shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    date_shaped && version >= MODERN_VERSION
}

/// Requests forwarded to the child.
pub(crate) const FORWARDED_METHODS: [&str; 8] = [
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// `server/discover`: answered from the child's cached `initialize` result.
pub(crate) const DISCOVER: &str = "server/discover";
/// `subscriptions/listen`: answered by the broker with a notification stream.
pub(crate) const LISTEN: &str = "subscriptions/listen";

/// 2025-era requests that 2026-07-28 removed; named in the 404 message so a
/// confused client learns why.
pub(crate) const REMOVED_METHODS: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The 2025-11-25 task methods, forwarded on 2025-era sessions (the child's
/// `tasks` capability is advertised to 2025 clients).
const LEGACY_TASK_METHODS: [&str; 4] = ["tasks/get", "tasks/list", "tasks/cancel", "tasks/result"];

/// Whether a 2025-era session forwards `method` to the child: the methods both
/// eras share, plus the task methods. Anything else is answered -32601 by the
/// broker, so nothing but a known request reaches a child; `resources/subscribe`
/// is not among them because the broker cannot route a shared child's updates.
pub(crate) fn is_legacy_forwarded(method: &str) -> bool {
    FORWARDED_METHODS.contains(&method) || LEGACY_TASK_METHODS.contains(&method)
}

/// The version a legacy `initialize` result names: the client's, when this
/// broker serves it, else [`LATEST_LEGACY_VERSION`] as a counter-offer.
pub(crate) fn negotiate_legacy_version(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(LATEST_LEGACY_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_versions() {
        assert!(is_supported_modern_version("2026-07-28"));
        assert!(is_modern_era_version("2026-07-28"));
        assert!(is_modern_era_version("2027-01-01"));
        assert!(!is_modern_era_version("v999.0.0"));
        assert!(!is_modern_era_version("garbage"));
        assert!(!is_modern_era_version("2026-07-28 "));
        assert!(!is_modern_era_version("2026-7-28"));
        assert!(!is_modern_era_version("2025-11-25"));
        assert!(!is_modern_era_version(""));
        for (requested, answered) in [
            (Some("2025-11-25"), "2025-11-25"),
            (Some("2025-06-18"), "2025-06-18"),
            (Some("2025-03-26"), "2025-03-26"),
            (Some("2024-11-05"), "2025-11-25"),
            (Some("2026-07-28"), "2025-11-25"),
            (Some("1900-01-01"), "2025-11-25"),
            (None, "2025-11-25"),
        ] {
            assert_eq!(
                negotiate_legacy_version(requested),
                answered,
                "{requested:?}"
            );
        }
    }
}
