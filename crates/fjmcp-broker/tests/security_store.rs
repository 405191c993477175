//! The store's part of the security hardening (issue 12): what anonymous
//! callers leave behind does not stay forever (registered clients that never
//! obtained a grant, old audit events), and the per-user session cap holds
//! under concurrency, also across instances. On SQLite, and on PostgreSQL when
//! `FJMCP_TEST_POSTGRES_URL` is set.

mod support;

use std::time::Duration;

use fjmcp_broker::clock::ManualClock;
use fjmcp_broker::crypto::hash_secret;
use fjmcp_broker::oauth::sweeper::{Retention, sweep_retention};
use fjmcp_broker::store::{AuditEvent, ClientKind, NewClient, NewGrant, Store};
use secrecy::SecretString;
use support::databases::TestDatabase;

fn client(id: &str) -> NewClient {
    NewClient {
        client_id: id.to_string(),
        kind: ClientKind::Registered,
        client_name: Some("anonymous".into()),
        redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
        application_type: "web".into(),
        token_endpoint_auth_method: "none".into(),
        client_secret_hash: None,
        metadata: "{}".into(),
        metadata_expires_at: None,
    }
}

/// A user a grant can belong to (the one place this test touches users).
async fn a_user(store: &Store) -> String {
    store
        .save_upstream_credential(
            &fjmcp_broker::upstream::UserIdentity {
                id: "1".into(),
                login: "alice".into(),
            },
            &fjmcp_broker::upstream::UpstreamCredential {
                access_token: SecretString::from("a".to_string()),
                refresh_token: None,
                access_expires_at: 0,
            },
        )
        .await
        .unwrap();
    "1".to_string()
}

fn event(kind: &str) -> AuditEvent {
    AuditEvent {
        kind: kind.into(),
        user_id: None,
        client_id: None,
        detail: serde_json::json!({}),
    }
}

#[tokio::test]
async fn unused_clients_and_old_audit_events_are_swept_and_nothing_else() {
    const DAY: i64 = 86_400;
    let retention = Retention {
        unused_client_lifetime: Duration::from_secs(DAY as u64),
        audit_retention: Duration::from_secs(30 * DAY as u64),
    };
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(1_700_000_000);
        let store = db.open_with(1, clock.clone()).await;
        let user = a_user(&store).await;
        store.put_client(&client("never-used")).await.unwrap();
        store.put_client(&client("used")).await.unwrap();
        store
            .create_grant(&NewGrant {
                user_id: user,
                client_id: "used".into(),
                scopes: "mcp".into(),
                resource: "https://mcp.example.com/mcp".into(),
            })
            .await
            .unwrap();
        store.append_audit(&event("old")).await.unwrap();

        clock.advance(DAY - 1);
        assert_eq!(
            sweep_retention(&store, &clock, retention).await.unwrap(),
            (0, 0),
            "{}: nothing is old enough yet",
            db.label
        );
        clock.advance(1);
        store.put_client(&client("fresh")).await.unwrap();
        let (clients, _) = sweep_retention(&store, &clock, retention).await.unwrap();
        assert_eq!(clients, 1, "{}", db.label);
        assert!(store.client("never-used").await.unwrap().is_none());
        assert!(
            store.client("used").await.unwrap().is_some(),
            "it has a grant"
        );
        assert!(store.client("fresh").await.unwrap().is_some(), "too young");

        clock.advance(30 * DAY);
        store.append_audit(&event("new")).await.unwrap();
        let (_, audit) = sweep_retention(&store, &clock, retention).await.unwrap();
        assert_eq!(audit, 1, "{}", db.label);
        let kept: Vec<String> = store
            .recent_audit(10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.kind)
            .collect();
        assert_eq!(kept, ["new"], "{}", db.label);
    }
}

#[tokio::test]
async fn the_session_cap_holds_when_sessions_are_created_at_once_on_two_instances() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(1_700_000_000);
        let first = db.open_with(1, clock.clone()).await;
        let second = db.open_with(1, clock.clone()).await;
        let user = a_user(&first).await;
        first.put_client(&client("c")).await.unwrap();
        let grant = first
            .create_grant(&NewGrant {
                user_id: user.clone(),
                client_id: "c".into(),
                scopes: "mcp".into(),
                resource: "https://mcp.example.com/mcp".into(),
            })
            .await
            .unwrap();
        let ids: Vec<String> = (0..16).map(|i| format!("session-{i}")).collect();
        let attempts = ids.iter().enumerate().map(|(i, id)| {
            let store = if i % 2 == 0 { &first } else { &second };
            let (grant, user) = (&grant.id, &user);
            async move {
                store
                    .create_session_capped(&hash_secret(id), grant, user, "2025-11-25", 3600, 5)
                    .await
                    .unwrap()
            }
        });
        let created = futures::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|created| *created)
            .count();
        assert_eq!(created, 5, "{}", db.label);
        assert_eq!(
            first.live_sessions_of_user(&user).await.unwrap(),
            5,
            "{}",
            db.label
        );
    }
}
