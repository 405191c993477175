//! The few HTML pages a person sees: the consent page and error pages for
//! requests that cannot be sent back to a client. Plain HTML, no JavaScript,
//! never framed, never cached; every interpolated value is escaped.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One stylesheet for every broker page (the account page's too): readable
/// on a phone, light or dark as the browser prefers, nothing loaded from elsewhere.
const STYLE: &str = ":root{color-scheme:light dark}\
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222;background:#fff;line-height:1.45}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin:0 0 .4rem}a{color:#1a56c4}\
.warn{background:#fff4e5;border:1px solid #f0b35a;padding:.6rem .8rem;border-radius:6px}\
.notice{background:#e8f4ea;border:1px solid #7cb98a;padding:.6rem .8rem;border-radius:6px}\
.box{border:1px solid #ddd;border-radius:8px;padding:1rem 1.2rem;margin:1rem 0}\
.muted{color:#666;font-size:.9rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.4rem 0 .8rem}dt{font-weight:600;font-size:.9rem}dd{margin:0;min-width:0}\
button{font-size:1rem;padding:.5rem 1.2rem;margin:.2rem .6rem .2rem 0;border-radius:6px;border:1px solid #888;cursor:pointer;background:#f4f4f4;color:#222}\
button.primary{background:#2f6fde;color:#fff;border-color:#2f6fde}button.danger{background:#b3261e;color:#fff;border-color:#b3261e}\
code{word-break:break-all}form{margin:0}\
.arm{animation:arm .8s}@keyframes arm{from,to{pointer-events:none;opacity:.45}}\
@media (prefers-color-scheme:dark){body{color:#e4e4e4;background:#15171c}a{color:#8ab4f8}\
.warn{background:#3b2a0e;border-color:#a8741f}.notice{background:#183222;border-color:#3f8a55}\
.box{border-color:#3c3f46}.muted{color:#a4a7ad}button{background:#2a2d34;color:#e4e4e4;border-color:#666}\
button.primary{background:#2a63c9;border-color:#5a8ef0}button.danger{background:#b3261e;border-color:#e0645c}}";

/// A complete page: the shared head and style around `body` (already HTML),
/// with [`protect`]'s headers.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    protect(response.headers_mut());
    response
}

/// Headers every broker page carries: no framing (clickjacking on the consent
/// button), no caching, no referrer leaking the query.
pub(crate) fn protect(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// An error page for a request the broker cannot answer with a redirect
/// (unknown client, unregistered redirect URI, expired sign-in).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p>Go back to your application and start the connection again.</p>",
            escape(title),
            escape(message)
        ),
    )
}

/// Who the client on the consent page is, as far as the broker can tell.
pub(crate) enum ClientIdentity<'a> {
    /// Registered anonymously: its name is whatever it said (maybe nothing).
    SelfDeclared(Option<&'a str>),
    /// A client ID metadata document: its name is from the document, and the
    /// host serving the document is verified (the broker fetched it there).
    Verified { name: &'a str, host: &'a str },
}

/// What the consent page shows.
pub(crate) struct ConsentView<'a> {
    pub client: ClientIdentity<'a>,
    pub client_id: &'a str,
    /// The host the code will be sent to.
    pub redirect_host: &'a str,
    /// True when the code goes to a program on the user's computer (loopback
    /// or private-use redirect), whose identity nothing proves.
    pub local_redirect: bool,
    pub user_login: &'a str,
    pub forgejo_url: &'a str,
    /// Names this request in the form.
    pub ticket: &'a str,
}

/// The page asking the user to approve or deny a client.
///
/// Against a double-click carried over from a window that was swapped under
/// the pointer: Deny comes first (it is also what Enter presses) and Approve
/// takes no clicks for a moment after the page appears (a CSS animation; the
/// page runs no script).
pub(crate) fn consent_page(view: &ConsentView<'_>) -> Response {
    let warning = if view.local_redirect {
        format!(
            "<p class=\"warn\">The authorization goes to <b>a program on this computer</b> \
             (<code>{host}</code>), and nothing proves which program that is. Only approve \
             if you just started the connection from {name} yourself.</p>",
            host = escape(view.redirect_host),
            name = match view.client {
                ClientIdentity::Verified { name, .. } => escape(name),
                ClientIdentity::SelfDeclared(_) => "this application".to_string(),
            },
        )
    } else {
        String::new()
    };
    let (heading, who, identity) = match view.client {
        ClientIdentity::Verified { name, host } => (
            escape(name),
            format!("<b>{}</b>", escape(name)),
            format!(
                "<p>Verified: its description is published by <b>{}</b>.</p>",
                escape(host)
            ),
        ),
        ClientIdentity::SelfDeclared(Some(name)) => (
            format!("an application that calls itself “{}”", escape(name)),
            format!("An application that calls itself <b>“{}”</b>", escape(name)),
            "<p>It chose that name itself when it registered; the broker cannot check it.</p>"
                .to_string(),
        ),
        ClientIdentity::SelfDeclared(None) => (
            "an unnamed application".to_string(),
            "An application that gave no name".to_string(),
            "<p>It registered without a name; the broker cannot tell what it is.</p>".to_string(),
        ),
    };
    let body = format!(
        "<h1>Allow {heading} to use Forgejo as {login}?</h1>\
         <div class=\"box\"><p>{who} wants to act as <b>{login}</b> on \
         <code>{forgejo}</code> through this MCP broker: it will be able to read and change \
         what your Forgejo account can (repositories, issues, pull requests, organizations), \
         until you revoke its access.</p>{identity}\
         <p>After you approve, you are sent back to <b>{host}</b>.</p>\
         <p>Client id: <code>{client_id}</code></p></div>{warning}\
         <form method=\"post\" action=\"/oauth/consent\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         <button class=\"primary arm\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button></form>\
         <p class=\"muted\">You can revoke this later at <a href=\"/account\">Connected apps</a> (/account on this broker).</p>",
        login = escape(view.user_login),
        forgejo = escape(view.forgejo_url),
        host = escape(view.redirect_host),
        client_id = escape(view.client_id),
        ticket = escape(view.ticket),
    );
    page(StatusCode::OK, "Authorize application", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
