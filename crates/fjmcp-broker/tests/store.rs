//! The store's domain methods, on SQLite always and on PostgreSQL when
//! `FJMCP_TEST_POSTGRES_URL` is set (each test gets a database of its own).

mod support;

use fjmcp_broker::clock::ManualClock;
use fjmcp_broker::config::StoreLocation;
use fjmcp_broker::crypto::{OpenError, hash_secret};
use fjmcp_broker::store::{
    AuditEvent, ClientKind, NewClient, NewGrant, StoreError, UpstreamCredential, UserIdentity,
};
use secrecy::{ExposeSecret, SecretString};
use support::databases::TestDatabase;

fn client(id: &str) -> NewClient {
    NewClient {
        client_id: id.to_string(),
        kind: ClientKind::Registered,
        client_name: Some("Test client".into()),
        redirect_uris: vec!["https://claude.ai/api/mcp/auth_callback".into()],
        application_type: "web".into(),
        token_endpoint_auth_method: "none".into(),
        client_secret_hash: None,
        metadata: r#"{"client_name":"Test client"}"#.into(),
        metadata_expires_at: None,
    }
}

fn alice() -> UserIdentity {
    UserIdentity {
        id: "1".into(),
        login: "alice".into(),
    }
}

fn credential(access: &str, refresh: &str) -> UpstreamCredential {
    UpstreamCredential {
        access_token: SecretString::from(access.to_string()),
        refresh_token: Some(SecretString::from(refresh.to_string())),
        access_expires_at: 1_700_003_600,
    }
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_cleanly() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        assert_eq!(store.schema_version().await.unwrap(), 1, "{}", db.label);
        store.ping().await.unwrap();
        store.close().await;
        let again = db.open().await;
        assert_eq!(again.schema_version().await.unwrap(), 1, "{}", db.label);
    }
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    for db in TestDatabase::all().await {
        let (a, b, c) = tokio::join!(db.open(), db.open(), db.open());
        for store in [a, b, c] {
            assert_eq!(store.schema_version().await.unwrap(), 1, "{}", db.label);
        }
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_broker_is_refused() {
    for db in TestDatabase::all().await {
        db.open().await.close().await;
        let url = match &db.location {
            StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreLocation::Postgres(url) => url.expose_secret().to_string(),
        };
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let sealer = std::sync::Arc::new(fjmcp_broker::crypto::Sealer::new(
            fjmcp_broker::crypto::SealingKey::from_bytes([1; 32]),
        ));
        let clock = std::sync::Arc::new(ManualClock::at(0));
        match fjmcp_broker::store::Store::open(&db.location, sealer, clock).await {
            Err(StoreError::SchemaTooNew {
                found: 999,
                known: 1,
            }) => {}
            other => panic!("{}: expected SchemaTooNew, got {other:?}", db.label),
        }
    }
}

#[tokio::test]
async fn clients_round_trip_and_refreshes_keep_creation_time() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(1_000);
        let store = db.open_with(1, clock.clone()).await;
        assert_eq!(store.client("nobody").await.unwrap(), None);

        let mut registered = client("c1");
        registered.client_secret_hash = Some(hash_secret("client-secret"));
        store.put_client(&registered).await.unwrap();
        let got = store.client("c1").await.unwrap().expect(db.label);
        assert_eq!(got.client, registered, "{}", db.label);
        assert_eq!(got.created_at, 1_000);

        clock.advance(50);
        let mut cimd = client("https://example.com/client.json");
        cimd.kind = ClientKind::MetadataDocument;
        cimd.metadata_expires_at = Some(2_000);
        store.put_client(&cimd).await.unwrap();
        cimd.redirect_uris.push("http://127.0.0.1/callback".into());
        cimd.client_name = None;
        clock.advance(50);
        store.put_client(&cimd).await.unwrap();
        let got = store.client(&cimd.client_id).await.unwrap().unwrap();
        assert_eq!(got.client, cimd, "{}", db.label);
        assert_eq!(got.created_at, 1_050, "{}", db.label);
    }
}

#[tokio::test]
async fn upstream_credentials_are_sealed_per_user_and_bump_the_generation() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        let generation = store
            .save_upstream_credential(&alice(), &credential("access-one", "refresh-one"))
            .await
            .unwrap();
        assert_eq!(generation, 1);
        let renamed = UserIdentity {
            login: "alice2".into(),
            ..alice()
        };
        let generation = store
            .save_upstream_credential(&renamed, &credential("access-two", "refresh-two"))
            .await
            .unwrap();
        assert_eq!(generation, 2, "{}", db.label);

        let (user, cred) = store.upstream_credential("1").await.unwrap().unwrap();
        assert_eq!(user.identity.login, "alice2");
        assert_eq!(user.generation, 2);
        assert_eq!(cred.access_token.expose_secret(), "access-two");
        assert_eq!(cred.refresh_token.unwrap().expose_secret(), "refresh-two");
        assert_eq!(cred.access_expires_at, 1_700_003_600);
        assert!(store.upstream_credential("2").await.unwrap().is_none());

        // A broker holding another key cannot open the values: they are sealed.
        let other_key = db.open_with(2, ManualClock::at(0)).await;
        match other_key.upstream_credential("1").await {
            Err(StoreError::Sealed(OpenError::UnknownKey(_))) => {}
            other => panic!("{}: expected UnknownKey, got {other:?}", db.label),
        }
    }
}

#[tokio::test]
async fn the_sqlite_file_never_holds_a_token_in_plaintext() {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    store
        .save_upstream_credential(
            &alice(),
            &credential("PLAINTEXT-ACCESS-TOKEN", "PLAINTEXT-REFRESH"),
        )
        .await
        .unwrap();
    store.close().await;
    let StoreLocation::Sqlite(path) = &db.location else {
        unreachable!()
    };
    let dir = path.parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("PLAINTEXT-ACCESS-TOKEN"));
        assert!(!text.contains("PLAINTEXT-REFRESH"));
    }
}

#[tokio::test]
async fn a_dead_credential_is_not_handed_out_until_the_user_signs_in_again() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        assert!(!store.mark_credential_dead("1").await.unwrap());
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        assert!(store.mark_credential_dead("1").await.unwrap());
        assert!(
            store.upstream_credential("1").await.unwrap().is_none(),
            "{}",
            db.label
        );
        assert!(
            store
                .user("1")
                .await
                .unwrap()
                .unwrap()
                .credential_dead_at
                .is_some()
        );
        let generation = store
            .save_upstream_credential(&alice(), &credential("a2", "r2"))
            .await
            .unwrap();
        assert_eq!(generation, 2);
        let (user, cred) = store.upstream_credential("1").await.unwrap().unwrap();
        assert_eq!(user.credential_dead_at, None);
        assert_eq!(cred.access_token.expose_secret(), "a2");
    }
}

#[tokio::test]
async fn grants_are_created_listed_and_revoked_once() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        store.put_client(&client("c1")).await.unwrap();
        store.put_client(&client("c2")).await.unwrap();
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        let new = |client: &str| NewGrant {
            user_id: "1".into(),
            client_id: client.into(),
            scopes: "mcp".into(),
            resource: "https://mcp.example.com/mcp".into(),
        };
        let g1 = store.create_grant(&new("c1")).await.unwrap();
        let g2 = store.create_grant(&new("c2")).await.unwrap();
        assert_ne!(g1.id, g2.id);
        assert_eq!(
            store.grant(&g1.id).await.unwrap().unwrap(),
            g1,
            "{}",
            db.label
        );
        assert_eq!(store.live_grants_of_user("1").await.unwrap().len(), 2);

        assert!(store.revoke_grant(&g1.id).await.unwrap());
        assert!(
            !store.revoke_grant(&g1.id).await.unwrap(),
            "second revoke is a no-op"
        );
        assert!(!store.revoke_grant("unknown").await.unwrap());
        assert!(!store.grant(&g1.id).await.unwrap().unwrap().is_live());
        let live = store.live_grants_of_user("1").await.unwrap();
        assert_eq!(live, vec![g2.clone()], "{}", db.label);
    }
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        let orphan = NewGrant {
            user_id: "nobody".into(),
            client_id: "no-client".into(),
            scopes: "mcp".into(),
            resource: "https://mcp.example.com/mcp".into(),
        };
        assert!(
            matches!(
                store.create_grant(&orphan).await,
                Err(StoreError::Database(_))
            ),
            "{}: a grant for an unknown user and client must be refused",
            db.label
        );
    }
}

#[tokio::test]
async fn consents_are_recorded_per_user_and_client() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        store.put_client(&client("c1")).await.unwrap();
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        assert_eq!(store.consent("1", "c1").await.unwrap(), None);
        store.record_consent("1", "c1", "mcp").await.unwrap();
        store.record_consent("1", "c1", "mcp extra").await.unwrap();
        assert_eq!(
            store.consent("1", "c1").await.unwrap().as_deref(),
            Some("mcp extra")
        );
        assert_eq!(
            store.consent("1", "c2").await.unwrap(),
            None,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn audit_events_come_back_newest_first() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(10);
        let store = db.open_with(1, clock.clone()).await;
        for kind in ["login", "consent.granted", "grant.revoked"] {
            store
                .append_audit(&AuditEvent {
                    kind: kind.into(),
                    user_id: Some("1".into()),
                    client_id: None,
                    detail: serde_json::json!({ "why": kind }),
                })
                .await
                .unwrap();
            clock.advance(1);
        }
        let recent = store.recent_audit(2).await.unwrap();
        assert_eq!(recent.len(), 2, "{}", db.label);
        assert_eq!(recent[0].0, 12);
        assert_eq!(recent[0].1.kind, "grant.revoked");
        assert_eq!(
            recent[1].1.detail,
            serde_json::json!({ "why": "consent.granted" })
        );
    }
}

#[tokio::test]
async fn a_closed_store_fails_its_ping() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        store.close().await;
        assert!(store.ping().await.is_err(), "{}", db.label);
    }
}
