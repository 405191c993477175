//! Redirect URI rules: which URIs a client may register, and whether the
//! `redirect_uri` of an authorization request matches a registered one.
//!
//! Pure functions, no I/O. The rules, and the decisions behind them:
//!
//! - **Normalized form only.** A URI is registrable only when it is already
//!   written the way a WHATWG URL parser (the `url` crate, and browsers) would
//!   write it: lowercase scheme and host, no default port, no dot segments, no
//!   whitespace, no backslashes, IP addresses in their canonical form. So
//!   `HTTPS://…`, `https://a.example:443/cb`, `http://127.1/cb`,
//!   `http://[0:0::1]/cb`, `http://localhost\@evil.example/` and ` https://…`
//!   are all refused, and what is stored is exactly what a browser will
//!   navigate to. One leniency: a URI with an empty path
//!   (`http://127.0.0.1:33418`) is accepted as written, although the parser
//!   would add a `/`.
//! - **No fragment, no userinfo, no `*`** anywhere, at most
//!   [`MAX_REDIRECT_URI_LEN`] characters, only the characters RFC 3986 allows
//!   (so no whitespace, no non-ASCII, no `\`, `"`, `<`, `>`, `^`, `` ` ``,
//!   `{`, `|`, `}`).
//! - **`https`** with a host: accepted.
//! - **`http`** only for the loopback hosts `localhost`, `127.0.0.1` and
//!   `[::1]`, written exactly so (RFC 8252 §7.3, §8.3). Other addresses in
//!   127.0.0.0/8 are refused: clients bind `127.0.0.1`, and a short list
//!   leaves no room for look-alikes (`localhost.evil.example`,
//!   `127.0.0.1.nip.io`, `localhost.`).
//! - **Private-use schemes** (RFC 8252 §7.1) are accepted when the scheme
//!   contains a dot (reverse-DNS form, `com.example.app:/callback`) or is one of
//!   [`DOTLESS_APP_SCHEMES`] (Cursor registers
//!   `cursor://anysphere.cursor-mcp/oauth/callback` in the same request as its
//!   other URIs, so refusing it would refuse Cursor altogether). The URI must be
//!   hierarchical (`scheme:/path` or `scheme://host/path`), which also refuses
//!   `localhost:8080/cb`, where the parser would read `localhost` as the
//!   scheme.
//! - **Always refused:** `javascript`, `data`, `file`, `vbscript`, `about`,
//!   `blob`, `filesystem`, `view-source`, and `http(s)` without a host.
//! - **`application_type` does not narrow the rules** (SEP-837 says web
//!   clients should not use loopback or private-use redirects): real clients
//!   omit `application_type` (so they count as `web`) while registering
//!   loopback and `cursor://` URIs, and refusing them would break them; PKCE
//!   protects the code on those redirects either way.
//!
//! Matching ([`matches`]) is exact string comparison, except that a loopback
//! `http` URI matches whatever port is presented (RFC 8252 §7.3), including a
//! registered URI without a port (`http://localhost/callback` matches
//! `http://localhost:53123/callback`), as Claude Code's metadata document
//! requires. Scheme, host (`localhost` and `127.0.0.1` are different), path and
//! query must still be identical.

use url::Url;

/// The longest redirect URI accepted, in bytes.
pub(crate) const MAX_REDIRECT_URI_LEN: usize = 2000;

/// Private-use schemes without a dot that are accepted all the same, because
/// widely used native MCP clients register them.
const DOTLESS_APP_SCHEMES: &[&str] = &["cursor", "vscode", "vscode-insiders"];

/// Schemes refused whatever their form: they run script, read local files or
/// name browser internals.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "filesystem",
    "view-source",
];

/// The hosts a plain-`http` (loopback) redirect URI may name, as written.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// Whether `uri` may be registered as a redirect URI. `Err` carries a message
/// fit for an OAuth `error_description` (it quotes at most the first 100
/// characters of the URI).
pub(crate) fn check_registrable(uri: &str) -> Result<(), String> {
    let url = parse_normalized(uri)?;
    let scheme = url.scheme();
    match scheme {
        "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("redirect URI {} has no host", quote(uri)));
            }
            Ok(())
        }
        "http" => {
            if is_loopback_url(&url) {
                Ok(())
            } else {
                Err(format!(
                    "redirect URI {} uses http with a host other than localhost, \
                     127.0.0.1 or [::1]; use https",
                    quote(uri)
                ))
            }
        }
        _ if scheme.contains('.') || DOTLESS_APP_SCHEMES.contains(&scheme) => {
            if !url.path().starts_with('/') {
                return Err(format!(
                    "redirect URI {} must be hierarchical (scheme:/path or scheme://host/path)",
                    quote(uri)
                ));
            }
            Ok(())
        }
        _ => Err(format!(
            "redirect URI {} uses the scheme {scheme:?}: use https, http on a loopback host, \
             or a private-use scheme in reverse-DNS form such as com.example.app:/callback",
            quote(uri)
        )),
    }
}

/// Whether the `redirect_uri` `presented` in an authorization request matches
/// the `registered` one: identical strings, or two loopback `http` URIs that
/// differ only in their port (or the presence of one).
pub(crate) fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (split_loopback(registered), split_loopback(presented)) {
        (Some(r), Some(p)) => r.host == p.host && r.rest == p.rest,
        _ => false,
    }
}

/// Whether `uri` is a loopback redirect URI: `http` to exactly `localhost`,
/// `127.0.0.1` or `[::1]`, in normalized form, with or without a port.
pub(crate) fn is_loopback(uri: &str) -> bool {
    split_loopback(uri).is_some()
}

/// Whether a code sent to `uri` stays on the user's computer, where nothing
/// proves who receives it: a loopback `http` URI (any local program can
/// listen on a port) or a private-use scheme (any app can claim one), RFC 8252
/// §8.6. An approval given earlier must not be reused silently for these.
pub(crate) fn stays_on_this_computer(uri: &str) -> bool {
    is_loopback(uri)
        || Url::parse(uri).map_or(true, |url| !matches!(url.scheme(), "https" | "http"))
}

/// What a consent page should show for a redirect URI: its host (with the
/// port for `https` URIs that name one), or for a private-use scheme the scheme
/// and any host (`com.example.app:`, `cursor://anysphere.cursor-mcp`). A URI
/// that does not parse is returned whole, for the page to escape and show.
pub(crate) fn shown_host(uri: &str) -> String {
    let Ok(url) = Url::parse(uri) else {
        return uri.to_string();
    };
    let host = url.host_str().unwrap_or("");
    match url.scheme() {
        "http" | "https" => match url.port() {
            Some(port) if url.scheme() == "https" => format!("{host}:{port}"),
            _ => host.to_string(),
        },
        scheme if host.is_empty() => format!("{scheme}:"),
        scheme => format!("{scheme}://{host}"),
    }
}

/// Parses `uri` and insists it is already in normalized form.
fn parse_normalized(uri: &str) -> Result<Url, String> {
    if uri.is_empty() {
        return Err("redirect URI is empty".to_string());
    }
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!(
            "redirect URI {} is longer than {MAX_REDIRECT_URI_LEN} characters",
            quote(uri)
        ));
    }
    if let Some(bad) = uri
        .chars()
        .find(|c| !c.is_ascii() || !is_uri_char(*c as u8))
    {
        return Err(format!(
            "redirect URI {} contains the character {bad:?}, which RFC 3986 does not allow \
             (whitespace, control, non-ASCII and characters such as \\ must be percent-encoded)",
            quote(uri)
        ));
    }
    if uri.contains('*') {
        return Err(format!(
            "redirect URI {} contains '*': wildcards are not supported",
            quote(uri)
        ));
    }
    if uri.contains('#') {
        return Err(format!(
            "redirect URI {} must not contain a fragment",
            quote(uri)
        ));
    }
    let url = Url::parse(uri)
        .map_err(|e| format!("redirect URI {} is not an absolute URI: {e}", quote(uri)))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "redirect URI {} must not contain user information",
            quote(uri)
        ));
    }
    if FORBIDDEN_SCHEMES.contains(&url.scheme()) {
        return Err(format!(
            "redirect URI {} uses the forbidden scheme {:?}",
            quote(uri),
            url.scheme()
        ));
    }
    let normalized = url.as_str();
    let empty_path_leniency = normalized.len() == uri.len() + 1
        && normalized.starts_with(uri)
        && normalized.ends_with('/')
        && url.path() == "/"
        && url.query().is_none();
    if normalized != uri && !empty_path_leniency {
        return Err(format!(
            "redirect URI {} is not in normalized form; write it as {}",
            quote(uri),
            quote(normalized)
        ));
    }
    Ok(url)
}

/// Whether `b` may appear in a URI as written (RFC 3986 §2: unreserved,
/// reserved, and `%` for percent-encoding).
pub(crate) fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

fn is_loopback_url(url: &Url) -> bool {
    url.scheme() == "http" && url.host_str().is_some_and(|h| LOOPBACK_HOSTS.contains(&h))
}

/// A loopback URI cut into the parts that matching compares.
struct Loopback<'a> {
    host: &'a str,
    /// Everything after the authority, as written: path and query.
    rest: &'a str,
}

fn split_loopback(uri: &str) -> Option<Loopback<'_>> {
    let url = parse_normalized(uri).ok()?;
    if !is_loopback_url(&url) || url.fragment().is_some() {
        return None;
    }
    // The URI is normalized, so the authority is exactly `host[:port]`.
    let after_scheme = uri.strip_prefix("http://")?;
    let end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(end);
    let host = LOOPBACK_HOSTS.iter().copied().find(|h| {
        authority == *h
            || authority
                .strip_prefix(*h)
                .is_some_and(|p| p.starts_with(':'))
    })?;
    Some(Loopback { host, rest })
}

/// The URI in quotes, cut to 100 characters, for error messages.
fn quote(uri: &str) -> String {
    let mut shown: String = uri.chars().take(100).collect();
    if shown.len() < uri.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {

    #[test]
    fn codes_for_loopback_and_private_use_redirects_stay_on_this_computer() {
        for local in [
            "http://127.0.0.1:33418/callback",
            "http://localhost/callback",
            "http://[::1]:6274/oauth/callback",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "com.example.app:/callback",
        ] {
            assert!(stays_on_this_computer(local), "{local}");
        }
        for remote in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://127.0.0.1/callback",
        ] {
            assert!(!stays_on_this_computer(remote), "{remote}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_clients_redirect_uris_are_registrable() {
        for uri in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
            "https://chatgpt.com/connector/oauth/abc123",
            "https://chatgpt.com/connector_platform_oauth_redirect",
            "http://localhost:6274/oauth/callback",
            "http://127.0.0.1:6276/oauth/callback",
            "http://localhost/callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
            "http://127.0.0.1:33418",
            "https://vscode.dev/redirect",
            "https://insiders.vscode.dev/redirect",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect/example-provider",
            "com.example.app://callback/path",
            "https://example.com/cb?tenant=a",
            "https://example.com",
        ] {
            assert_eq!(check_registrable(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn look_alikes_and_dangerous_uris_are_refused() {
        for uri in [
            // Not absolute / empty / whitespace.
            "",
            "/callback",
            "callback",
            " https://example.com/cb",
            "https://example.com/cb ",
            "https://example.com/c b",
            "https://example.com/cb\n",
            "https://exa\tmple.com/cb",
            // Fragments, userinfo, wildcards.
            "https://example.com/cb#frag",
            "https://example.com/cb#",
            "https://user@example.com/cb",
            "https://user:pw@example.com/cb",
            "http://localhost@evil.example/cb",
            "http://localhost:80@evil.example/cb",
            "http://@localhost/cb",
            "https://*.example.com/cb",
            "https://example.com/*",
            "http://localhost:*/cb",
            // http to anything but the exact loopback hosts.
            "http://example.com/cb",
            "http://localhost.evil.example/cb",
            "http://localhost.:8080/cb",
            "http://127.0.0.1.nip.io/cb",
            "http://127.0.0.2/cb",
            "http://127.1/cb",
            "http://0x7f000001/cb",
            "http://2130706433/cb",
            "http://0177.0.0.1/cb",
            "http://[0:0:0:0:0:0:0:1]/cb",
            "http://[::ffff:127.0.0.1]/cb",
            "http://[::ffff:7f00:1]/cb",
            "http://0.0.0.0/cb",
            "http://10.0.0.1/cb",
            "http://LOCALHOST/cb",
            "http://LocalHost/cb",
            "http://localhost%2eevil.example/cb",
            "http://loc%61lhost/cb",
            "http://localhost\\@evil.example/cb",
            "http:\\\\localhost\\cb",
            "http:/localhost/cb",
            "http:localhost/cb",
            "http:///localhost/cb",
            // Not normalized.
            "HTTPS://example.com/cb",
            "Https://example.com/cb",
            "https://EXAMPLE.com/cb",
            "https://example.com:443/cb",
            "http://localhost:080/cb",
            "https://example.com/a/../cb",
            "https://example.com/./cb",
            "https://example.com/a/%2e%2e/cb",
            "https://bücher.example/cb",
            "https://example.com/cb?x=ü",
            "https://example.com?x=1",
            "https:example.com/cb",
            "https:/example.com/cb",
            // No host.
            "https://",
            "https:///cb",
            "http://",
            "http://:8080/cb",
            // Forbidden schemes.
            "javascript:alert(1)",
            "javascript://example.com/%0aalert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "data:text/html;base64,PHNjcmlwdD4=",
            "file:///etc/passwd",
            "file://localhost/etc/passwd",
            "vbscript:msgbox(1)",
            "about:blank",
            "blob:https://example.com/uuid",
            "view-source:https://example.com/",
            // Dotless schemes that are not known app schemes, and non-hierarchical forms.
            "myapp://callback",
            "localhost:8080/cb",
            "mailto:a@example.com",
            "ftp://example.com/cb",
            "ws://localhost/cb",
            "intent://callback#Intent;end",
            "ms-msdt:/id",
            "com.example.app:callback",
            "Com.Example.App:/callback",
            "com.example.app:/cb#frag",
            "cursor:callback",
            "com.example.app:/cb\\x",
            "com.example.app:/cb|x",
            "cursor://anysphere.cursor-mcp/a^b",
            "https://example.com/a|b",
            "https://example.com/{cb}",
            "https://example.com/\"cb\"",
            "https://example.com/<cb>",
            "https://example.com/`cb`",
        ] {
            assert!(check_registrable(uri).is_err(), "{uri:?} should be refused");
        }
    }

    #[test]
    fn overlong_uris_are_refused() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
        let err = check_registrable(&long).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let fits = format!(
            "https://example.com/{}",
            "a".repeat(MAX_REDIRECT_URI_LEN - 20)
        );
        assert_eq!(fits.len(), MAX_REDIRECT_URI_LEN);
        assert_eq!(check_registrable(&fits), Ok(()));
    }

    #[test]
    fn error_messages_name_the_uri_and_suggest_the_normal_form() {
        let err = check_registrable("HTTPS://Example.com/cb").unwrap_err();
        assert!(err.contains("\"HTTPS://Example.com/cb\""), "{err}");
        assert!(err.contains("\"https://example.com/cb\""), "{err}");
        let err = check_registrable("http://evil.example/cb").unwrap_err();
        assert!(err.contains("use https"), "{err}");
        let long = format!("https://example.com/{}", "x".repeat(300));
        let err = check_registrable(&format!("{long}#f")).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn exact_match_outside_loopback() {
        let r = "https://claude.ai/api/mcp/auth_callback";
        assert!(matches(r, r));
        for p in [
            "https://claude.ai/api/mcp/auth_callback/",
            "https://claude.ai/api/mcp/auth_callback?x=1",
            "https://claude.ai:443/api/mcp/auth_callback",
            "https://claude.ai:8443/api/mcp/auth_callback",
            "https://CLAUDE.ai/api/mcp/auth_callback",
            "HTTPS://claude.ai/api/mcp/auth_callback",
            "http://claude.ai/api/mcp/auth_callback",
            "https://claude.ai/api/mcp/auth_callback#",
            "https://claude.ai/api/mcp/Auth_callback",
            "https://claude.ai/api/mcp/auth%5Fcallback",
            "https://claude.ai/api/mcp/./auth_callback",
            " https://claude.ai/api/mcp/auth_callback",
        ] {
            assert!(!matches(r, p), "{p}");
        }
        let app = "com.example.app:/cb";
        assert!(matches(app, app));
        assert!(!matches(app, "com.example.app:/cb/"));
    }

    #[test]
    fn loopback_matches_any_port() {
        let cases = [
            (
                "http://localhost/callback",
                "http://localhost:53123/callback",
            ),
            ("http://localhost/callback", "http://localhost/callback"),
            (
                "http://localhost:8080/callback",
                "http://localhost:53123/callback",
            ),
            (
                "http://localhost:8080/callback",
                "http://localhost/callback",
            ),
            ("http://127.0.0.1/callback", "http://127.0.0.1:1/callback"),
            ("http://127.0.0.1/", "http://127.0.0.1:59656/"),
            ("http://127.0.0.1:33418/", "http://127.0.0.1:59656/"),
            ("http://127.0.0.1:33418", "http://127.0.0.1:59656"),
            ("http://[::1]/cb?x=1", "http://[::1]:65535/cb?x=1"),
            (
                "http://localhost:6274/oauth/callback",
                "http://localhost:6274/oauth/callback",
            ),
        ];
        for (r, p) in cases {
            assert!(matches(r, p), "{r} vs {p}");
        }
    }

    #[test]
    fn loopback_still_compares_scheme_host_path_and_query() {
        let r = "http://localhost/callback";
        for p in [
            "http://127.0.0.1:53123/callback",
            "http://[::1]:53123/callback",
            "https://localhost:53123/callback",
            "http://localhost:53123/callback/",
            "http://localhost:53123/Callback",
            "http://localhost:53123/callback?x=1",
            "http://localhost:53123/callback#x",
            "http://localhost:53123/other",
            "http://localhost:053123/callback",
            "http://localhost:99999/callback",
            "http://localhost:/callback",
            "http://localhost:80/callback",
            "http://LOCALHOST:53123/callback",
            "http://localhost.:53123/callback",
            "http://localhost.evil.example:53123/callback",
            "http://localhost:53123@evil.example/callback",
            "http://user@localhost:53123/callback",
            "http://localhost:53123\\callback",
            "http://localhost:53123/./callback",
            "http://localhost:53123//callback",
        ] {
            assert!(!matches(r, p), "{p}");
        }
        assert!(!matches(
            "http://127.0.0.1:33418/",
            "http://127.0.0.1:59656"
        ));
        assert!(!matches(
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:5/cb?a=2"
        ));
        // A registered URI that is not loopback never gets port leniency.
        assert!(!matches(
            "https://localhost/cb",
            "https://localhost:8443/cb"
        ));
        assert!(!matches(
            "http://localhost.evil.example/cb",
            "http://localhost.evil.example:1/cb"
        ));
    }

    #[test]
    fn loopback_detection() {
        for uri in [
            "http://localhost/cb",
            "http://localhost:1234/cb",
            "http://127.0.0.1/",
            "http://[::1]:5/x",
            "http://127.0.0.1:33418",
        ] {
            assert!(is_loopback(uri), "{uri}");
        }
        for uri in [
            "https://localhost/cb",
            "http://localhost.evil.example/cb",
            "http://127.0.0.2/cb",
            "http://127.1/cb",
            "http://LOCALHOST/cb",
            "http://localhost/cb#f",
            "http://user@localhost/cb",
            "http://[::ffff:127.0.0.1]/cb",
            "localhost:8080/cb",
            "not a uri",
        ] {
            assert!(!is_loopback(uri), "{uri}");
        }
    }

    #[test]
    fn shown_hosts() {
        assert_eq!(
            shown_host("https://claude.ai/api/mcp/auth_callback"),
            "claude.ai"
        );
        assert_eq!(
            shown_host("https://example.com:8443/cb"),
            "example.com:8443"
        );
        assert_eq!(
            shown_host("http://localhost:6274/oauth/callback"),
            "localhost"
        );
        assert_eq!(shown_host("http://[::1]:6274/cb"), "[::1]");
        assert_eq!(shown_host("com.example.app:/callback"), "com.example.app:");
        assert_eq!(
            shown_host("cursor://anysphere.cursor-mcp/oauth/callback"),
            "cursor://anysphere.cursor-mcp"
        );
        assert_eq!(shown_host("not a uri"), "not a uri");
    }

    fn registrable_uri() -> impl Strategy<Value = String> {
        let segment = "[a-z0-9_~-]{1,8}";
        let path =
            proptest::collection::vec(segment, 0..4).prop_map(|s| format!("/{}", s.join("/")));
        let query = proptest::option::of("[a-z0-9]{1,5}=[a-z0-9]{0,5}");
        let host = "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9]{0,10}){1,3}";
        let https = (
            host,
            proptest::option::of(1u16..),
            path.clone(),
            query.clone(),
        )
            .prop_map(|(h, port, p, q)| {
                let port = port
                    .filter(|p| *p != 443)
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default();
                let q = q.map(|q| format!("?{q}")).unwrap_or_default();
                format!("https://{h}{port}{p}{q}")
            });
        let loopback = (
            proptest::sample::select(LOOPBACK_HOSTS),
            proptest::option::of(1u16..),
            path.clone(),
            query,
        )
            .prop_map(|(h, port, p, q)| {
                let port = port
                    .filter(|p| *p != 80)
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default();
                let q = q.map(|q| format!("?{q}")).unwrap_or_default();
                format!("http://{h}{port}{p}{q}")
            });
        let app = ("[a-z]{2,6}\\.[a-z]{2,6}(\\.[a-z]{2,6})?", path)
            .prop_map(|(scheme, p)| format!("{scheme}:{p}"));
        prop_oneof![https, loopback, app]
    }

    proptest! {
        #[test]
        fn every_registrable_uri_matches_itself(uri in registrable_uri()) {
            prop_assert_eq!(check_registrable(&uri), Ok(()));
            prop_assert!(matches(&uri, &uri));
        }

        #[test]
        fn https_matches_only_byte_identical(
            uri in registrable_uri().prop_filter("https only", |u| u.starts_with("https://")),
            index in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = uri.clone().into_bytes();
            let i = index.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let presented = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(!matches(&uri, &presented), "{} matched {}", uri, presented);
        }

        #[test]
        fn https_never_matches_a_longer_or_shorter_uri(
            uri in registrable_uri().prop_filter("https only", |u| u.starts_with("https://")),
            suffix in "[ -~]{1,4}",
        ) {
            let longer = format!("{uri}{suffix}");
            prop_assert!(!matches(&uri, &longer));
            prop_assert!(!matches(&longer, &uri));
        }

        #[test]
        fn loopback_port_is_ignored_but_nothing_else(
            host in proptest::sample::select(LOOPBACK_HOSTS),
            registered_port in proptest::option::of(1u16..),
            presented_port in proptest::option::of(1u16..),
            path in "(/[a-z0-9]{1,6}){0,3}",
            other_path in "(/[a-z0-9]{1,6}){0,3}",
        ) {
            let with_port = |port: Option<u16>, path: &str| match port.filter(|p| *p != 80) {
                Some(p) => format!("http://{host}:{p}{path}"),
                None => format!("http://{host}{path}"),
            };
            let registered = with_port(registered_port, &path);
            prop_assert_eq!(check_registrable(&registered), Ok(()));
            prop_assert!(matches(&registered, &with_port(presented_port, &path)));
            if other_path != path {
                prop_assert!(!matches(&registered, &with_port(presented_port, &other_path)));
            }
        }

        #[test]
        fn accepted_uris_have_a_safe_shape(
            prefix in proptest::sample::select(&[
                "", "http://", "https://", "HTTP://", "http:", "http:/", "javascript:",
                "com.example.app:", "cursor://", "localhost:", "http://localhost",
                "http://127.0.0.1", "http://[::1]", "http://localhost.", "data:", "file://",
            ][..]),
            tail in "[ -~]{0,24}",
        ) {
            let uri = format!("{prefix}{tail}");
            if check_registrable(&uri).is_ok() {
                prop_assert!(!uri.contains('#') && !uri.contains(' ') && !uri.contains('*'));
                prop_assert!(uri.bytes().all(is_uri_char));
                let lower = uri.to_ascii_lowercase();
                for bad in FORBIDDEN_SCHEMES {
                    let prefix = format!("{bad}:");
                    prop_assert!(!lower.starts_with(&prefix));
                }
                if let Some(rest) = uri.strip_prefix("http://") {
                    prop_assert!(LOOPBACK_HOSTS.iter().any(|h| rest.starts_with(h)));
                    prop_assert!(is_loopback(&uri));
                }
                let scheme = uri.split(':').next().unwrap_or("");
                prop_assert!(
                    scheme == "https" || scheme == "http" || scheme.contains('.')
                        || DOTLESS_APP_SCHEMES.contains(&scheme)
                );
            }
        }
    }
}
