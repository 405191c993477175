//! The account page's HTML: the list of connected apps, the signed-out page,
//! and its error pages. Built on the OAuth pages' frame (one stylesheet, the
//! same protective headers, every interpolated value escaped); no JavaScript.

use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::clock::format_utc;
use crate::oauth::pages::escape;
use crate::oauth::shown_host;
use crate::store::ConnectedApp;

/// The OAuth pages' frame, except that the page's own forms may name their
/// origin: with the frame's `no-referrer`, browsers send `Origin: null` for
/// them, and browsers without `Sec-Fetch-Site` would then be refused.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let mut response = crate::oauth::pages::page(status, title, body);
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A note after a change (Post/Redirect/Get), from a fixed set: nothing from
/// the query string is ever shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    Revoked,
    RevokedAll,
}

impl Notice {
    pub(super) fn from_query(query: Option<&str>) -> Option<Notice> {
        url::form_urlencoded::parse(query?.as_bytes()).find_map(|(name, value)| {
            match (name.as_ref(), value.as_ref()) {
                ("done", "revoked") => Some(Notice::Revoked),
                ("done", "revoked-all") => Some(Notice::RevokedAll),
                _ => None,
            }
        })
    }

    fn html(self) -> &'static str {
        match self {
            Notice::Revoked => {
                "<p class=\"notice\" role=\"status\">The app was disconnected. It has to ask you again before it can act as you.</p>"
            }
            Notice::RevokedAll => {
                "<p class=\"notice\" role=\"status\">Every app was disconnected. Each has to ask you again before it can act as you.</p>"
            }
        }
    }
}

/// What the list shows.
pub(super) struct AppsView<'a> {
    pub(super) login: &'a str,
    pub(super) forgejo_url: &'a str,
    pub(super) apps: &'a [ConnectedApp],
    /// Goes into every form.
    pub(super) csrf: &'a str,
    pub(super) notice: Option<Notice>,
}

/// A time for people: `2026-12-04 16:11 UTC`.
fn when(seconds: i64) -> String {
    let text = format_utc(seconds);
    // 2026-12-04T16:11:00Z → 2026-12-04 16:11 UTC
    format!("{} {} UTC", &text[..10], &text[11..16])
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

/// `GET /account` for a signed-in user.
pub(super) fn apps_page(view: &AppsView<'_>) -> Response {
    let csrf = hidden("csrf", view.csrf);
    let mut body = format!(
        "<h1>Connected apps</h1>\
         <p>Signed in as <b>{login}</b> of <code>{forgejo}</code>. These applications can use \
         Forgejo as you through this MCP broker: read and change what your account can.</p>{notice}",
        login = escape(view.login),
        forgejo = escape(view.forgejo_url),
        notice = view.notice.map_or("", Notice::html),
    );
    if view.apps.is_empty() {
        body.push_str("<p class=\"box\">No application is connected.</p>");
    } else {
        body.push_str(
            "<p class=\"muted\">Names are what each application calls itself when it registers; \
             the broker cannot check them. The address it sends you back to says more.</p>",
        );
    }
    for app in view.apps {
        let mut hosts: Vec<String> = app.redirect_uris.iter().map(|u| shown_host(u)).collect();
        hosts.dedup();
        body.push_str(&format!(
            "<div class=\"box app\"><h2>{name}</h2>\
             <dl><dt>Sends you back to</dt><dd>{hosts}</dd>\
             <dt>Approved</dt><dd>{approved}</dd>\
             <dt>Last used</dt><dd>{used}</dd>\
             <dt>Client id</dt><dd><code>{client_id}</code></dd></dl>\
             <form method=\"post\" action=\"/account/revoke\">{csrf}{grant}\
             <button type=\"submit\">Revoke</button></form></div>",
            name = escape(app.client_name.as_deref().unwrap_or("(no name given)")),
            hosts = escape(&hosts.join(", ")),
            approved = when(app.approved_at),
            used = app.last_used_at.map_or_else(|| "never".to_string(), when),
            client_id = escape(&app.client_id),
            grant = hidden("grant", &app.grant_id),
        ));
    }
    if !view.apps.is_empty() {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/account/revoke-all\">{csrf}\
             <button class=\"danger\" type=\"submit\">Sign out everywhere</button></form>\
             <p class=\"muted\">Ends the access of every app above; each has to ask you again.</p>"
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/account/sign-out\">{csrf}\
         <button type=\"submit\">Sign out of this page</button></form>"
    ));
    page(StatusCode::OK, "Connected apps", &body)
}

/// The page for a Forgejo user who never connected an app through the broker.
pub(super) fn nothing_connected_page(login: &str, forgejo_url: &str) -> Response {
    page(
        StatusCode::OK,
        "Connected apps",
        &format!(
            "<h1>Connected apps</h1><p>Signed in as <b>{}</b> of <code>{}</code>.</p>\
             <p class=\"box\">No application is connected: none has been approved to act as you through this broker.</p>",
            escape(login),
            escape(forgejo_url)
        ),
    )
}

/// After signing out of the page.
pub(super) fn signed_out_page() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1>Signed out</h1><p>You are signed out of the Connected apps page. \
         Your apps stay connected.</p><p><a href=\"/account\">Sign in again</a></p>",
    )
}

/// An error on the account page, with the way back.
pub(super) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"/account\">Back to Connected apps</a></p>",
            escape(title),
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn html(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_list_escapes_what_clients_declared_and_puts_the_token_in_every_form() {
        let apps = [ConnectedApp {
            grant_id: "g1".into(),
            client_id: "c\"1".into(),
            client_name: Some("<script>evil</script>".into()),
            redirect_uris: vec![
                "https://claude.ai/api/mcp/auth_callback".into(),
                "https://claude.ai/other".into(),
            ],
            approved_at: 1_700_000_000,
            last_used_at: None,
        }];
        let text = html(apps_page(&AppsView {
            login: "alice",
            forgejo_url: "https://forgejo.example.com",
            apps: &apps,
            csrf: "tok\"en",
            notice: Notice::from_query(Some("done=revoked")),
        }))
        .await;
        assert!(text.contains("&lt;script&gt;evil&lt;/script&gt;"), "{text}");
        assert!(!text.contains("<script>"));
        assert!(text.contains("c&quot;1"));
        assert!(
            text.contains("<dd>claude.ai</dd>"),
            "hosts are shown once: {text}"
        );
        assert!(text.contains("2023-11-14 22:13 UTC"));
        assert!(text.contains("never"));
        assert!(text.contains("cannot check them"));
        assert!(text.contains("The app was disconnected"));
        // Revoke, sign out everywhere, sign out: each form carries the token.
        assert_eq!(text.matches("<form").count(), 3);
        assert_eq!(
            text.matches("name=\"csrf\" value=\"tok&quot;en\"").count(),
            3
        );
        assert!(text.contains("name=\"grant\" value=\"g1\""));
    }

    #[test]
    fn only_known_notices_are_shown() {
        assert_eq!(
            Notice::from_query(Some("done=revoked-all")),
            Some(Notice::RevokedAll)
        );
        assert_eq!(Notice::from_query(Some("done=<b>")), None);
        assert_eq!(Notice::from_query(None), None);
    }
}
