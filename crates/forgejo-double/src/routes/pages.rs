//! The few HTML pages a browser sees: login form, consent page, error page. Plain HTML forms
//! without JavaScript, so tests can drive them with an HTTP client and people with a browser.

use std::fmt::Write as _;

use crate::state::OAuthError;

/// Names of the authorization-request parameters the login form carries along.
pub(super) const CARRIED_PARAMS: [&str; 7] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

/// Escapes text for HTML element content and double-quoted attribute values.
fn escape(text: &str) -> String {
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

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <title>{title} - forgejo-double</title></head>\n<body>\n\
         <p><small>forgejo-double: a test double of Forgejo, for trying and testing only.</small></p>\n\
         {body}</body>\n</html>\n",
        title = escape(title),
    )
}

/// The sign-in form. `carried` are the authorization request's parameters, re-sent as hidden
/// fields so the form post is self-contained (the double keeps no pre-login state).
pub(super) fn login(carried: &[(&str, &str)], user_name: &str, error: Option<&str>) -> String {
    let mut body = String::from("<h1>Sign in</h1>\n");
    if let Some(error) = error {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    body.push_str("<form method=\"post\" action=\"/user/login\">\n");
    for (name, value) in carried {
        let _ = writeln!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let _ = write!(
        body,
        "<p><label for=\"user_name\">Username or email address</label>\n\
         <input id=\"user_name\" name=\"user_name\" value=\"{}\" autofocus></p>\n\
         <p><label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\"></p>\n\
         <p><button type=\"submit\" name=\"action\" value=\"login\">Sign in</button>\n\
         <button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button></p>\n\
         </form>\n",
        escape(user_name)
    );
    page("Sign in", &body)
}

/// The consent page shown to public clients after sign-in.
pub(super) fn consent(consent_id: &str, client_id: &str, login: &str, scope: &str) -> String {
    let scope = if scope.is_empty() { "(none)" } else { scope };
    let body = format!(
        "<h1>Authorize application</h1>\n\
         <p>The application <strong>{client}</strong> wants to access the account \
         <strong>{login}</strong>. Requested scope: <code>{scope}</code>.</p>\n\
         <form method=\"post\" action=\"/login/oauth/grant\">\n\
         <input type=\"hidden\" name=\"consent_id\" value=\"{consent}\">\n\
         <p><button type=\"submit\" name=\"granted\" value=\"true\">Authorize Application</button>\n\
         <button type=\"submit\" name=\"granted\" value=\"false\">Cancel</button></p>\n\
         </form>\n",
        client = escape(client_id),
        login = escape(login),
        scope = escape(scope),
        consent = escape(consent_id),
    );
    page("Authorize application", &body)
}

/// The page for errors that must not be redirected (unknown client, unregistered redirect URI).
pub(super) fn error(error: &OAuthError) -> String {
    let body = format!(
        "<h1>Authorization failed</h1>\n<p><code>{}</code>: {}</p>\n",
        escape(error.code.as_str()),
        escape(&error.description)
    );
    page("Authorization failed", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = login(&[("state", "\"><script>")], "<b>", Some("a & b"));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("value=\"&lt;b&gt;\""));
        assert!(html.contains("a &amp; b"));
        assert!(!html.contains("<script>"));
    }
}
