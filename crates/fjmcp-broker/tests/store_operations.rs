//! The store's operations methods (the account page's sign-ins, sessions and
//! connections, consent withdrawal, "last used"), on SQLite and, when
//! `FJMCP_TEST_POSTGRES_URL` is set, on PostgreSQL. The admin command's
//! queries are tested through the binary in `admin.rs`.

mod support;

use fjmcp_broker::clock::ManualClock;
use fjmcp_broker::crypto::hash_secret;
use fjmcp_broker::store::{
    ClientKind, NewClient, NewGrant, NewTokenPair, Store, UserGrantRevocation,
};
use fjmcp_broker::upstream::{UpstreamCredential, UserIdentity};
use secrecy::{ExposeSecret, SecretString};
use support::databases::TestDatabase;

const START: i64 = 1_700_000_000;

fn client(id: &str, name: Option<&str>) -> NewClient {
    NewClient {
        client_id: id.into(),
        kind: ClientKind::Registered,
        client_name: name.map(str::to_string),
        redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
        application_type: "web".into(),
        token_endpoint_auth_method: "none".into(),
        client_secret_hash: None,
        metadata: "{}".into(),
        metadata_expires_at: None,
    }
}

async fn with_user(store: &Store, id: &str, login: &str) {
    store
        .save_upstream_credential(
            &UserIdentity {
                id: id.into(),
                login: login.into(),
            },
            &UpstreamCredential {
                access_token: SecretString::from(format!("at-{login}")),
                refresh_token: None,
                access_expires_at: START + 3600,
            },
        )
        .await
        .unwrap();
}

fn grant(user: &str, client: &str) -> NewGrant {
    NewGrant {
        user_id: user.into(),
        client_id: client.into(),
        scopes: "mcp".into(),
        resource: "https://mcp.example.com/mcp".into(),
    }
}

#[tokio::test]
async fn a_withdrawn_consent_is_gone_and_only_that_one() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        store.put_client(&client("c1", None)).await.unwrap();
        store.put_client(&client("c2", None)).await.unwrap();
        with_user(&store, "1", "alice").await;
        store.record_consent("1", "c1", "mcp").await.unwrap();
        store.record_consent("1", "c2", "mcp").await.unwrap();
        assert!(
            store.withdraw_consent("1", "c1").await.unwrap(),
            "{}",
            db.label
        );
        assert!(
            !store.withdraw_consent("1", "c1").await.unwrap(),
            "nothing left to withdraw"
        );
        assert_eq!(
            store.consent("1", "c1").await.unwrap(),
            None,
            "{}",
            db.label
        );
        assert!(store.consent("1", "c2").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn account_sign_ins_are_single_use_bound_to_their_browser_and_expire() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(START);
        let store = db.open_with(1, clock.clone()).await;
        let verifier = SecretString::from("v".repeat(43));
        let (state, browser) = (hash_secret("acct.s1"), hash_secret("browser-1"));
        store
            .create_account_login(&state, &browser, &verifier, START + 600)
            .await
            .unwrap();
        assert_eq!(
            store
                .claim_account_login(&state, &hash_secret("another browser"))
                .await
                .unwrap()
                .map(|v| v.expose_secret().to_string()),
            None,
            "{}: another browser cannot finish it",
            db.label
        );
        let claimed = store
            .claim_account_login(&state, &browser)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.expose_secret(), verifier.expose_secret());
        assert!(
            store
                .claim_account_login(&state, &browser)
                .await
                .unwrap()
                .is_none(),
            "single use"
        );

        let late = hash_secret("acct.s2");
        store
            .create_account_login(&late, &browser, &verifier, START + 600)
            .await
            .unwrap();
        clock.advance(600);
        assert!(
            store
                .claim_account_login(&late, &browser)
                .await
                .unwrap()
                .is_none(),
            "{}: expired",
            db.label
        );
        let swept = store.sweep_expired().await.unwrap();
        assert_eq!(swept.account_logins, 2, "{}", db.label);
    }
}

#[tokio::test]
async fn account_sessions_belong_to_known_users_and_expire() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(START);
        let store = db.open_with(1, clock.clone()).await;
        assert!(
            !store
                .create_account_session(&hash_secret("s0"), "9", START + 60)
                .await
                .unwrap(),
            "{}: no session for a user the broker does not know",
            db.label
        );
        with_user(&store, "1", "alice").await;
        assert!(
            store
                .create_account_session(&hash_secret("s1"), "1", START + 60)
                .await
                .unwrap()
        );
        let session = store
            .account_session(&hash_secret("s1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (session.user_id.as_str(), session.login.as_str()),
            ("1", "alice")
        );
        assert!(
            store
                .account_session(&hash_secret("s0"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.next_expiry().await.unwrap(),
            Some(START + 60),
            "{}: the sweeper wakes for it",
            db.label
        );

        assert!(
            store
                .create_account_session(&hash_secret("s2"), "1", START + 600)
                .await
                .unwrap()
        );
        store.end_account_session(&hash_secret("s2")).await.unwrap();
        assert!(
            store
                .account_session(&hash_secret("s2"))
                .await
                .unwrap()
                .is_none(),
            "ended"
        );

        clock.advance(60);
        assert!(
            store
                .account_session(&hash_secret("s1"))
                .await
                .unwrap()
                .is_none(),
            "{}: expired",
            db.label
        );
        assert_eq!(store.sweep_expired().await.unwrap().account_sessions, 1);
    }
}

#[tokio::test]
async fn a_user_sees_and_revokes_only_their_own_connections() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(START);
        let store = db.open_with(1, clock.clone()).await;
        store
            .put_client(&client("c1", Some("Claude")))
            .await
            .unwrap();
        store.put_client(&client("c2", None)).await.unwrap();
        with_user(&store, "1", "alice").await;
        with_user(&store, "2", "bob").await;
        let alice_c1 = store.create_grant(&grant("1", "c1")).await.unwrap();
        clock.advance(10);
        let alice_c2 = store.create_grant(&grant("1", "c2")).await.unwrap();
        let bob_c1 = store.create_grant(&grant("2", "c1")).await.unwrap();
        for (user, c) in [("1", "c1"), ("1", "c2"), ("2", "c1")] {
            store.record_consent(user, c, "mcp").await.unwrap();
        }
        clock.advance(100);
        store
            .issue_tokens(
                &alice_c1,
                &NewTokenPair {
                    access_hash: hash_secret("at1"),
                    access_expires_at: START + 3600,
                    refresh: None,
                },
            )
            .await
            .unwrap();

        let apps = store.connected_apps("1").await.unwrap();
        assert_eq!(
            apps.iter().map(|a| a.grant_id.as_str()).collect::<Vec<_>>(),
            [alice_c2.id.as_str(), alice_c1.id.as_str()],
            "{}: newest first, bob's not among them",
            db.label
        );
        assert_eq!(apps[1].client_name.as_deref(), Some("Claude"));
        assert_eq!(apps[0].client_name, None);
        assert_eq!(apps[1].approved_at, START);
        assert_eq!(
            apps[1].last_used_at,
            Some(START + 110),
            "{}: tokens mark use",
            db.label
        );
        assert_eq!(apps[0].last_used_at, None);
        assert_eq!(
            apps[1].redirect_uris,
            ["https://claude.ai/api/mcp/auth_callback"]
        );

        assert_eq!(
            store.revoke_user_grant("1", &bob_c1.id).await.unwrap(),
            UserGrantRevocation::NotFound,
            "{}: another user's grant",
            db.label
        );
        assert!(store.grant(&bob_c1.id).await.unwrap().unwrap().is_live());
        assert!(store.consent("2", "c1").await.unwrap().is_some());

        assert_eq!(
            store.revoke_user_grant("1", &alice_c1.id).await.unwrap(),
            UserGrantRevocation::Revoked {
                client_id: "c1".into()
            }
        );
        assert!(
            store
                .authenticate_access_token(&hash_secret("at1"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.consent("1", "c1").await.unwrap(),
            None,
            "{}: consent withdrawn",
            db.label
        );
        assert!(store.consent("1", "c2").await.unwrap().is_some());
        assert!(
            store.consent("2", "c1").await.unwrap().is_some(),
            "bob's approval stays"
        );
        assert_eq!(
            store.revoke_user_grant("1", &alice_c1.id).await.unwrap(),
            UserGrantRevocation::AlreadyRevoked {
                client_id: "c1".into()
            }
        );
        assert_eq!(
            store.connected_apps("1").await.unwrap().len(),
            1,
            "{}: revoked grants are not listed",
            db.label
        );
    }
}
