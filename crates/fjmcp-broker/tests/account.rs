//! The "Connected apps" page on the real binary: sign-in through the Forgejo
//! test double, the list, revoking one app or all, and what it refuses
//! (cross-site and token-less POSTs, other users' grants, replayed sign-ins).

mod support;

use support::oauth::{Attempt, CLAUDE_CALLBACK, Landing, Stack};

const LOOPBACK_CALLBACK: &str = "http://127.0.0.1:33418/callback";
/// An https redirect: an approval of it is reused (a loopback one is asked
/// again every time, whoever approved it before).
const EDITOR_CALLBACK: &str = "https://editor.example/callback";

/// A browser signed in to the account page.
struct Account {
    /// `fjmcp-account=…`, as the browser sends it back.
    cookie: String,
}

/// The `name=value` of a `Set-Cookie` header naming `name`, and the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_string(), v.to_string()))
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

/// The first sign-in hop: `/account` without a session goes to Forgejo, with
/// the cookie binding the attempt to this browser. Returns (Forgejo URL, cookie).
async fn start_sign_in(stack: &Stack) -> (String, String) {
    let response = stack.http.get(stack.url("/account")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let to_forgejo = location(&response);
    assert!(to_forgejo.starts_with(&stack.double.url()), "{to_forgejo}");
    let (cookie, header) = set_cookie(&response, "fjmcp-account-login").expect("login cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    (to_forgejo, cookie)
}

/// Forgejo (auto-login as `login`) sends the browser back: the callback URL.
async fn through_forgejo(stack: &Stack, login: &str, to_forgejo: &str) -> String {
    stack.double.set_auto_login(Some(login));
    let response = stack.http.get(to_forgejo).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let callback = location(&response);
    assert!(
        callback.starts_with(&stack.url("/oauth/callback?")),
        "{callback}"
    );
    callback
}

async fn sign_in(stack: &Stack, login: &str) -> Account {
    let (to_forgejo, login_cookie) = start_sign_in(stack).await;
    let callback = through_forgejo(stack, login, &to_forgejo).await;
    let response = stack
        .http
        .get(&callback)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/account");
    let (cookie, header) = set_cookie(&response, "fjmcp-account").expect("session cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax") && header.contains("Path=/"),
        "{header}"
    );
    assert!(
        !header.contains("Secure"),
        "loopback http: browsers drop Secure cookies"
    );
    Account { cookie }
}

impl Account {
    async fn page(&self, stack: &Stack) -> (u16, String) {
        self.page_at(stack, "/account").await
    }

    async fn page_at(&self, stack: &Stack, path: &str) -> (u16, String) {
        let response = stack
            .http
            .get(stack.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn html(&self, stack: &Stack) -> String {
        let (status, html) = self.page(stack).await;
        assert_eq!(status, 200, "{html}");
        html
    }

    /// The CSRF token of the page's forms.
    async fn csrf(&self, stack: &Stack) -> String {
        let html = self.html(stack).await;
        field(&html, "csrf").expect("the page has forms with a CSRF token")
    }

    /// POSTs `form` to `path` as the page's own form would be sent.
    async fn post(
        &self,
        stack: &Stack,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = stack
            .http
            .post(stack.url(path))
            .header("cookie", &self.cookie)
            .form(form);
        if !headers.iter().any(|(name, _)| *name == "origin") {
            request = request.header("origin", &stack.issuer);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// The value of the first hidden input named `name`.
fn field(html: &str, name: &str) -> Option<String> {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
}

/// Every grant id the page offers to revoke.
fn grant_ids(html: &str) -> Vec<String> {
    html.split("name=\"grant\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// The refresh token of a fresh authorization of `client` by `login`.
async fn connect(stack: &Stack, login: &str, client: &str, redirect: &str) -> String {
    let attempt = Attempt::new(client, redirect);
    let code = stack.code_for(login, &attempt).await;
    let (status, body) = stack.exchange(&attempt, &code).await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"].as_str().unwrap().to_string()
}

async fn refresh_works(stack: &Stack, client: &str, refresh_token: &str) -> bool {
    let (status, body) = stack
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client),
        ])
        .await;
    match status {
        200 => true,
        400 => {
            assert_eq!(body["error"], "invalid_grant", "{body}");
            false
        }
        other => panic!("{other}: {body}"),
    }
}

#[tokio::test]
async fn signing_in_lists_the_users_apps_and_creates_no_grant_or_code() {
    let stack = Stack::start(&[]).await;
    let claude = stack.register("Claude <b>", &[CLAUDE_CALLBACK]).await;
    let cursor = stack.register("Cursor", &[LOOPBACK_CALLBACK]).await;
    connect(&stack, "alice", &claude, CLAUDE_CALLBACK).await;
    connect(&stack, "alice", &cursor, LOOPBACK_CALLBACK).await;
    let store = stack.open_store().await;
    let grants_before = store.live_grants_of_user("1").await.unwrap();
    let audit_before = store.recent_audit(100).await.unwrap().len();

    let account = sign_in(&stack, "alice").await;
    let html = account.html(&stack).await;
    assert!(html.contains("Signed in as <b>alice</b>"), "{html}");
    assert!(
        html.contains("Claude &lt;b&gt;"),
        "names are escaped: {html}"
    );
    assert!(html.contains("Cursor"));
    assert!(
        html.contains("claude.ai") && html.contains("127.0.0.1"),
        "redirect hosts"
    );
    assert!(
        html.contains("calls itself") && html.contains("cannot check"),
        "names are self-declared"
    );
    assert!(html.contains("Approved") && html.contains("Last used") && html.contains(" UTC"));
    assert_eq!(grant_ids(&html).len(), 2);
    assert!(html.contains("Sign out everywhere"));

    // The sign-in created no grant, no code and no consent; it recorded itself.
    assert_eq!(store.live_grants_of_user("1").await.unwrap(), grants_before);
    let audit = store.recent_audit(100).await.unwrap();
    assert_eq!(audit.len(), audit_before + 1);
    assert_eq!(audit[0].1.kind, "account.login");
    // Forgejo rotated alice's tokens for the sign-in: the broker kept the new
    // ones, so her connections keep working.
    let (_, stored) = store.upstream_credential("1").await.unwrap().unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        stack.double.valid_refresh_tokens("alice"),
        vec![stored.refresh_token.unwrap().expose_secret().to_string()]
    );

    // bob never connected anything: he is told so, and nothing about him is stored.
    let (to_forgejo, login_cookie) = start_sign_in(&stack).await;
    let callback = through_forgejo(&stack, "bob", &to_forgejo).await;
    let response = stack
        .http
        .get(&callback)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        set_cookie(&response, "fjmcp-account").is_none(),
        "no session"
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("No application is connected")
    );
    assert!(
        store.user("2").await.unwrap().is_none(),
        "no user row, no tokens kept"
    );

    // The consent page points here.
    let other = stack.register("Other", &[CLAUDE_CALLBACK]).await;
    let Landing::Consent { html, .. } = stack
        .browse_as(
            "alice",
            &stack.authorize_url(&Attempt::new(&other, CLAUDE_CALLBACK), &[]),
        )
        .await
    else {
        panic!("a new client asks for consent")
    };
    assert!(html.contains("href=\"/account\""), "{html}");
}

#[tokio::test]
async fn revoking_an_app_ends_its_grant_and_the_next_authorization_asks_again() {
    let stack = Stack::start(&[]).await;
    let claude = stack.register("Claude", &[CLAUDE_CALLBACK]).await;
    let cursor = stack.register("Cursor", &[EDITOR_CALLBACK]).await;
    let claude_refresh = connect(&stack, "alice", &claude, CLAUDE_CALLBACK).await;
    let cursor_refresh = connect(&stack, "alice", &cursor, EDITOR_CALLBACK).await;
    let store = stack.open_store().await;
    let claude_grant = store
        .live_grants_of_user("1")
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.grant.client_id == claude)
        .unwrap();

    let account = sign_in(&stack, "alice").await;
    let csrf = account.csrf(&stack).await;
    let response = account
        .post(
            &stack,
            "/account/revoke",
            &[("csrf", &csrf), ("grant", &claude_grant.id)],
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/account?done=revoked");

    assert!(
        !refresh_works(&stack, &claude, &claude_refresh).await,
        "the grant ended"
    );
    assert!(
        refresh_works(&stack, &cursor, &cursor_refresh).await,
        "the other app stays"
    );
    let (_, page) = account.page_at(&stack, "/account?done=revoked").await;
    assert!(page.contains("The app was disconnected"), "{page}");
    assert_eq!(grant_ids(&page).len(), 1);
    let audit = store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].1.kind, "grant.revoked");
    assert_eq!(audit[0].1.detail["by"], "user");

    // The consent was withdrawn: Claude must ask again; Cursor (an https redirect,
    // so its approval is reused) still needs no consent.
    let again = stack
        .browse_as(
            "alice",
            &stack.authorize_url(&Attempt::new(&claude, CLAUDE_CALLBACK), &[]),
        )
        .await;
    assert!(matches!(again, Landing::Consent { .. }), "{again:?}");
    let cursor_again = stack
        .browse_as(
            "alice",
            &stack.authorize_url(&Attempt::new(&cursor, EDITOR_CALLBACK), &[]),
        )
        .await;
    assert!(
        matches!(cursor_again, Landing::Client(_)),
        "{cursor_again:?}"
    );
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_grant_of_the_user_and_no_one_elses() {
    let stack = Stack::start(&[]).await;
    let claude = stack.register("Claude", &[CLAUDE_CALLBACK]).await;
    let cursor = stack.register("Cursor", &[LOOPBACK_CALLBACK]).await;
    let alice_claude = connect(&stack, "alice", &claude, CLAUDE_CALLBACK).await;
    let alice_cursor = connect(&stack, "alice", &cursor, LOOPBACK_CALLBACK).await;
    let bob_claude = connect(&stack, "bob", &claude, CLAUDE_CALLBACK).await;

    let account = sign_in(&stack, "alice").await;
    let csrf = account.csrf(&stack).await;
    let response = account
        .post(&stack, "/account/revoke-all", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/account?done=revoked-all");
    assert!(!refresh_works(&stack, &claude, &alice_claude).await);
    assert!(!refresh_works(&stack, &cursor, &alice_cursor).await);
    assert!(
        refresh_works(&stack, &claude, &bob_claude).await,
        "bob's grant is not alice's"
    );
    let page = account.html(&stack).await;
    assert!(page.contains("No application is connected"), "{page}");

    // Signing out of the page ends its session and clears the cookie.
    let response = account
        .post(&stack, "/account/sign-out", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(response.status(), 200);
    let (_, header) = set_cookie(&response, "fjmcp-account").unwrap();
    assert!(header.contains("Max-Age=0"), "{header}");
    let (status, _) = account.page(&stack).await;
    assert_eq!(status, 303, "the old cookie signs in again");
}

#[tokio::test]
async fn cross_site_and_token_less_posts_and_other_users_grants_are_refused() {
    let stack = Stack::start(&[]).await;
    let claude = stack.register("Claude", &[CLAUDE_CALLBACK]).await;
    let alice_refresh = connect(&stack, "alice", &claude, CLAUDE_CALLBACK).await;
    let bob_refresh = connect(&stack, "bob", &claude, CLAUDE_CALLBACK).await;
    let store = stack.open_store().await;
    let bob_grant = store.live_grants_of_user("2").await.unwrap().remove(0);

    let alice = sign_in(&stack, "alice").await;
    let html = alice.html(&stack).await;
    let csrf = field(&html, "csrf").unwrap();
    let alice_grant = grant_ids(&html).remove(0);
    let revoke = [("csrf", csrf.as_str()), ("grant", alice_grant.as_str())];

    for (what, headers) in [
        ("another origin", &[("origin", "https://evil.example")][..]),
        ("the null origin", &[("origin", "null")][..]),
        (
            "a second, foreign origin",
            &[
                ("origin", stack.issuer.as_str()),
                ("origin", "https://evil.example"),
            ][..],
        ),
    ] {
        let response = alice
            .post(&stack, "/account/revoke", &revoke, headers)
            .await;
        assert_eq!(response.status(), 403, "{what}");
    }
    // Without Origin, the browser's Sec-Fetch-Site tells a cross-site form.
    let response = stack
        .http
        .post(stack.url("/account/revoke"))
        .header("cookie", &alice.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&revoke)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "Sec-Fetch-Site: cross-site");
    for (what, form) in [
        ("no token", vec![("grant", alice_grant.as_str())]),
        (
            "a wrong token",
            vec![("csrf", "forged"), ("grant", alice_grant.as_str())],
        ),
        (
            "two tokens",
            vec![
                ("csrf", csrf.as_str()),
                ("csrf", "forged"),
                ("grant", alice_grant.as_str()),
            ],
        ),
    ] {
        let response = alice.post(&stack, "/account/revoke", &form, &[]).await;
        assert_eq!(response.status(), 403, "{what}");
    }
    // Without the session cookie, even with the right token.
    let response = stack
        .http
        .post(stack.url("/account/revoke"))
        .header("origin", &stack.issuer)
        .form(&revoke)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "no session");
    // bob's grant is not alice's to revoke: unknown to her.
    let response = alice
        .post(
            &stack,
            "/account/revoke",
            &[("csrf", &csrf), ("grant", &bob_grant.id)],
            &[],
        )
        .await;
    assert_eq!(response.status(), 404);
    // bob's token in alice's session is no better than a wrong one.
    let bob = sign_in(&stack, "bob").await;
    let bob_csrf = bob.csrf(&stack).await;
    let response = alice
        .post(
            &stack,
            "/account/revoke",
            &[("csrf", &bob_csrf), ("grant", &alice_grant)],
            &[],
        )
        .await;
    assert_eq!(response.status(), 403);

    assert!(
        refresh_works(&stack, &claude, &alice_refresh).await,
        "nothing was revoked"
    );
    assert!(refresh_works(&stack, &claude, &bob_refresh).await);
    assert!(store.consent("1", &claude).await.unwrap().is_some());
    assert!(store.consent("2", &claude).await.unwrap().is_some());
}

#[tokio::test]
async fn a_sign_in_finishes_once_and_only_in_the_browser_that_started_it() {
    let stack = Stack::start(&[]).await;
    let claude = stack.register("Claude", &[CLAUDE_CALLBACK]).await;
    connect(&stack, "alice", &claude, CLAUDE_CALLBACK).await;
    let (to_forgejo, login_cookie) = start_sign_in(&stack).await;
    let callback = through_forgejo(&stack, "alice", &to_forgejo).await;
    // Another browser (no cookie, or another attempt's) cannot finish it.
    let (_, other_cookie) = start_sign_in(&stack).await;
    for cookie in [None, Some(other_cookie.as_str())] {
        let mut request = stack.http.get(&callback);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{cookie:?}");
        assert!(set_cookie(&response, "fjmcp-account").is_none());
    }
    let first = stack
        .http
        .get(&callback)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    let replay = stack
        .http
        .get(&callback)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400, "single use");
    assert!(set_cookie(&replay, "fjmcp-account").is_none());
    // Authorizations' callbacks are untouched by the account page's routing.
    let forged = stack
        .http
        .get(stack.url("/oauth/callback?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
}
