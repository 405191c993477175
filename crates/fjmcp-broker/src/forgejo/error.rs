//! What can go wrong talking to Forgejo, sorted by what the caller should do
//! about it, and the scrubbing that keeps secrets out of every message.

/// Longest piece of Forgejo-supplied text (an error code or description) kept
/// in an error: enough for any real description, too little for a page of HTML
/// or a proxy's echo of the request to flood the logs.
const MAX_FORGEJO_TEXT: usize = 200;

/// Why a call to Forgejo failed.
///
/// The three variants are the three things a caller can do: send the user back
/// to sign in ([`ForgejoError::Refused`]), try again later
/// ([`ForgejoError::Transient`]), or tell the operator that something is
/// misconfigured or broken ([`ForgejoError::Protocol`]). Neither the `Display`
/// nor the `Debug` output ever holds a token, code, verifier or the client
/// secret: messages are built from fixed text, statuses and Forgejo's own error
/// code and description, and the latter are scrubbed of everything the broker
/// sent in the request before they are stored.
#[derive(Debug, thiserror::Error)]
pub enum ForgejoError {
    /// Forgejo refused this grant or token (`invalid_grant`,
    /// `unauthorized_client`, or a 401 from userinfo, reported as
    /// `invalid_token`): the user must sign in again.
    ///
    /// Forgejo answers `unauthorized_client` for a bad or reused code, a PKCE
    /// failure and a refresh token that has already been rotated, so both codes
    /// mean "this credential is dead", not "the broker is misconfigured".
    #[error("Forgejo refused the grant or token: {error}{}", describe(description))]
    Refused {
        /// The OAuth error code, e.g. `unauthorized_client`.
        error: String,
        /// Forgejo's `error_description`, scrubbed and shortened.
        description: Option<String>,
    },
    /// Network error, timeout, 5xx, 429: worth retrying.
    #[error("Forgejo is unavailable for now: {0}")]
    Transient(String),
    /// Forgejo answered something we cannot use (bad JSON, missing fields,
    /// unexpected status, other OAuth errors such as invalid_client).
    ///
    /// Retrying will not help; these usually point at the broker's
    /// configuration (wrong client secret, wrong URL) or at something between
    /// the broker and Forgejo that is not Forgejo.
    #[error("unexpected answer from Forgejo: {0}")]
    Protocol(String),
}

impl ForgejoError {
    /// True when the credential or grant is dead and only a new sign-in helps;
    /// the caller then marks the user's credential dead instead of retrying.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ForgejoError::Refused { .. })
    }
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// Makes a piece of text that came from Forgejo safe to keep in an error:
/// every secret the broker sent in the request is cut out (a server or proxy
/// that echoes the request must not leak it into logs), control characters
/// become spaces (no forged log lines), and the result is shortened.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut clean = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        clean = clean.replace(secret, "[redacted]");
    }
    let clean: String = clean
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    match clean.char_indices().nth(MAX_FORGEJO_TEXT) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secrets_controls_and_length() {
        assert_eq!(
            scrub("bad code s3cret-code\r\nfor\tclient", &["s3cret-code", ""]),
            "bad code [redacted]  for client"
        );
        let long = scrub(&"é".repeat(500), &[]);
        assert_eq!(long.chars().count(), MAX_FORGEJO_TEXT + 1);
        assert!(long.ends_with('…'));
        assert_eq!(scrub("  short  ", &[]), "short");
    }

    #[test]
    fn messages_name_the_kind_of_failure() {
        let refused = ForgejoError::Refused {
            error: "unauthorized_client".into(),
            description: Some("token was already used".into()),
        };
        assert!(refused.is_refusal());
        assert_eq!(
            refused.to_string(),
            "Forgejo refused the grant or token: unauthorized_client (token was already used)"
        );
        let bare = ForgejoError::Refused {
            error: "invalid_grant".into(),
            description: None,
        };
        assert_eq!(
            bare.to_string(),
            "Forgejo refused the grant or token: invalid_grant"
        );
        assert!(!ForgejoError::Transient("x".into()).is_refusal());
        assert!(!ForgejoError::Protocol("x".into()).is_refusal());
    }
}
