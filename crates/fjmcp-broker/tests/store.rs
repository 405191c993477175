//! The store's domain methods, on SQLite always and on PostgreSQL when
//! `FJMCP_TEST_POSTGRES_URL` is set (each test gets a database of its own).

mod support;

use fjmcp_broker::clock::ManualClock;
use fjmcp_broker::config::StoreLocation;
use fjmcp_broker::crypto::{OpenError, hash_secret};
use fjmcp_broker::store::{AuditEvent, ClientKind, NewClient, NewGrant, StoreError};
use fjmcp_broker::upstream::{UpstreamCredential, UserIdentity};
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

/// The newest migration shipped (both backends have the same numbers).
fn latest_migration() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations");
    let numbers = |backend: &str| -> Vec<i64> {
        let mut numbers: Vec<i64> = std::fs::read_dir(format!("{dir}/{backend}"))
            .unwrap()
            .map(|entry| {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                name[..4].parse().unwrap()
            })
            .collect();
        numbers.sort_unstable();
        numbers
    };
    let sqlite = numbers("sqlite");
    assert_eq!(
        sqlite,
        numbers("postgres"),
        "every migration has both dialects"
    );
    *sqlite.last().unwrap()
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_cleanly() {
    let latest = latest_migration();
    assert!(latest >= 2);
    for db in TestDatabase::all().await {
        let store = db.open().await;
        assert_eq!(
            store.schema_version().await.unwrap(),
            latest,
            "{}",
            db.label
        );
        store.ping().await.unwrap();
        store.close().await;
        let again = db.open().await;
        assert_eq!(
            again.schema_version().await.unwrap(),
            latest,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    for db in TestDatabase::all().await {
        let (a, b, c) = tokio::join!(db.open(), db.open(), db.open());
        for store in [a, b, c] {
            assert_eq!(
                store.schema_version().await.unwrap(),
                latest_migration(),
                "{}",
                db.label
            );
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
            Err(StoreError::SchemaTooNew { found: 999, known }) if known == latest_migration() => {}
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
        let unknown = store.lock_credential("1").await.unwrap();
        assert_eq!(unknown.mark_dead(0).await.unwrap(), None, "no such user");
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        let lock = store.lock_credential("1").await.unwrap();
        assert_eq!(lock.mark_dead(1).await.unwrap(), Some(0));
        assert_eq!(
            store.credential_generation("1").await.unwrap(),
            Some((2, true)),
            "death moves the generation on"
        );
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
        assert_eq!(generation, 3);
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

mod oauth_state {
    use super::*;
    use fjmcp_broker::store::{
        CodeProof, CodeRedemption, CodeRefusal, NewAuthorizationCode, NewPendingAuthorization,
        NewTokenPair, RefreshOutcome, Store,
    };

    async fn with_user_and_client(db: &TestDatabase, clock: ManualClock) -> Store {
        let store = db.open_with(1, clock).await;
        store.put_client(&client("c1")).await.unwrap();
        store.put_client(&client("c2")).await.unwrap();
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        store
    }

    fn pending(state: &str, expires_at: i64) -> NewPendingAuthorization {
        NewPendingAuthorization {
            state_hash: hash_secret(state),
            client_id: "c1".into(),
            redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
            client_state: Some("client-state".into()),
            code_challenge: "challenge".into(),
            scopes: "mcp".into(),
            resource: "https://mcp.example.com/mcp".into(),
            upstream_verifier: SecretString::from("upstream-verifier".to_string()),
            expires_at,
        }
    }

    fn code(code: &str, client: &str) -> NewAuthorizationCode {
        NewAuthorizationCode {
            code_hash: hash_secret(code),
            grant: NewGrant {
                user_id: "1".into(),
                client_id: client.into(),
                scopes: "mcp".into(),
                resource: "https://mcp.example.com/mcp".into(),
            },
            redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
            code_challenge: "challenge".into(),
            expires_at: 1_060,
        }
    }

    fn pair(access: &str, refresh: &str) -> NewTokenPair {
        NewTokenPair {
            access_hash: hash_secret(access),
            access_expires_at: 1_000 + 3_600,
            refresh: Some((hash_secret(refresh), 1_000 + 86_400)),
        }
    }

    #[tokio::test]
    async fn a_callback_state_is_single_use_and_expires() {
        for db in TestDatabase::all().await {
            let clock = ManualClock::at(1_000);
            let store = with_user_and_client(&db, clock.clone()).await;
            store
                .create_pending_authorization(&pending("s1", 1_600))
                .await
                .unwrap();
            store
                .create_pending_authorization(&pending("s2", 1_600))
                .await
                .unwrap();

            let claimed = store
                .claim_pending_for_callback(&hash_secret("s1"))
                .await
                .unwrap()
                .expect(db.label);
            assert_eq!(
                claimed.request.upstream_verifier.expose_secret(),
                "upstream-verifier"
            );
            assert_eq!(
                claimed.request.client_state.as_deref(),
                Some("client-state")
            );
            assert!(
                store
                    .claim_pending_for_callback(&hash_secret("s1"))
                    .await
                    .unwrap()
                    .is_none(),
                "replay"
            );
            assert!(
                store
                    .claim_pending_for_callback(&hash_secret("forged"))
                    .await
                    .unwrap()
                    .is_none()
            );
            clock.advance(600);
            assert!(
                store
                    .claim_pending_for_callback(&hash_secret("s2"))
                    .await
                    .unwrap()
                    .is_none(),
                "expired"
            );
        }
    }

    #[tokio::test]
    async fn consent_needs_the_matching_csrf_value_and_is_answered_once() {
        for db in TestDatabase::all().await {
            let store = with_user_and_client(&db, ManualClock::at(1_000)).await;
            store
                .create_pending_authorization(&pending("s", 1_600))
                .await
                .unwrap();
            store
                .claim_pending_for_callback(&hash_secret("s"))
                .await
                .unwrap()
                .unwrap();
            store
                .await_consent(
                    &hash_secret("s"),
                    &alice(),
                    None,
                    &hash_secret("ticket"),
                    &hash_secret("csrf"),
                )
                .await
                .unwrap();
            assert!(
                store
                    .claim_pending_for_consent(&hash_secret("ticket"), &hash_secret("other-csrf"))
                    .await
                    .unwrap()
                    .is_none()
            );
            let claimed = store
                .claim_pending_for_consent(&hash_secret("ticket"), &hash_secret("csrf"))
                .await
                .unwrap()
                .expect(db.label);
            assert_eq!(claimed.user_id.as_deref(), Some("1"));
            assert!(claimed.held.is_none(), "nothing was held");
            assert!(
                store
                    .claim_pending_for_consent(&hash_secret("ticket"), &hash_secret("csrf"))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[tokio::test]
    async fn codes_redeem_once_and_a_replay_is_recognised() {
        for db in TestDatabase::all().await {
            let store = with_user_and_client(&db, ManualClock::at(1_000)).await;
            let grant = store
                .issue_authorization_code(&code("code-1", "c1"))
                .await
                .unwrap();
            let proof = CodeProof {
                client_id: "c1",
                challenge: "challenge",
                redirect_uri: None,
            };
            // Presentations that prove nothing about the code's owner leave it usable.
            for (wrong, why) in [
                (
                    CodeProof {
                        client_id: "c2",
                        ..proof
                    },
                    CodeRefusal::WrongClient,
                ),
                (
                    CodeProof {
                        challenge: "other",
                        ..proof
                    },
                    CodeRefusal::WrongVerifier,
                ),
                (
                    CodeProof {
                        redirect_uri: Some("https://evil.example/cb"),
                        ..proof
                    },
                    CodeRefusal::WrongRedirectUri,
                ),
            ] {
                assert_eq!(
                    store
                        .redeem_authorization_code(&hash_secret("code-1"), wrong)
                        .await
                        .unwrap(),
                    CodeRedemption::Refused(why),
                    "{}",
                    db.label
                );
            }
            match store
                .redeem_authorization_code(&hash_secret("code-1"), proof)
                .await
                .unwrap()
            {
                CodeRedemption::Redeemed(redeemed) => {
                    assert_eq!(redeemed.grant_id, grant.id);
                    assert_eq!(redeemed.client_id, "c1");
                    assert_eq!(redeemed.expires_at, 1_060);
                }
                other => panic!("{}: {other:?}", db.label),
            }
            assert_eq!(
                store
                    .redeem_authorization_code(&hash_secret("code-1"), proof)
                    .await
                    .unwrap(),
                CodeRedemption::Reused {
                    grant_id: grant.id.clone()
                }
            );
            // Another client replaying a spent code is refused, but revokes nothing.
            assert_eq!(
                store
                    .redeem_authorization_code(
                        &hash_secret("code-1"),
                        CodeProof {
                            client_id: "c2",
                            ..proof
                        }
                    )
                    .await
                    .unwrap(),
                CodeRedemption::Refused(CodeRefusal::AlreadyUsed)
            );
            assert_eq!(
                store
                    .redeem_authorization_code(&hash_secret("nope"), proof)
                    .await
                    .unwrap(),
                CodeRedemption::Unknown
            );
        }
    }

    #[tokio::test]
    async fn access_tokens_authenticate_until_expiry_or_revocation() {
        for db in TestDatabase::all().await {
            let clock = ManualClock::at(1_000);
            let store = with_user_and_client(&db, clock.clone()).await;
            let grant = store
                .issue_authorization_code(&code("c", "c1"))
                .await
                .unwrap();
            store
                .issue_tokens(&grant, &pair("at-1", "rt-1"))
                .await
                .unwrap();
            let found = store
                .authenticate_access_token(&hash_secret("at-1"))
                .await
                .unwrap()
                .expect(db.label);
            assert_eq!(found.user_id, "1");
            assert_eq!(found.grant_id, grant.id);
            assert_eq!(found.resource, "https://mcp.example.com/mcp");
            assert!(
                store
                    .authenticate_access_token(&hash_secret("rt-1"))
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(
                store.grant_of_token(&hash_secret("rt-1")).await.unwrap(),
                Some((grant.id.clone(), "c1".to_string()))
            );

            clock.advance(3_600);
            assert!(
                store
                    .authenticate_access_token(&hash_secret("at-1"))
                    .await
                    .unwrap()
                    .is_none(),
                "expired"
            );
            clock.advance(-10);
            store.revoke_grant(&grant.id).await.unwrap();
            assert!(
                store
                    .authenticate_access_token(&hash_secret("at-1"))
                    .await
                    .unwrap()
                    .is_none(),
                "revoked"
            );
        }
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_with_a_grace_window_and_reuse_revokes_the_grant() {
        for db in TestDatabase::all().await {
            let clock = ManualClock::at(1_000);
            let store = with_user_and_client(&db, clock.clone()).await;
            let grant = store
                .issue_authorization_code(&code("c", "c1"))
                .await
                .unwrap();
            store
                .issue_tokens(&grant, &pair("at-1", "rt-1"))
                .await
                .unwrap();

            let rotated = store
                .rotate_refresh_token(&hash_secret("rt-1"), "c1", &pair("at-2", "rt-2"), 10)
                .await
                .unwrap();
            assert!(
                matches!(rotated, RefreshOutcome::Rotated(ref g) if g.id == grant.id),
                "{}: {rotated:?}",
                db.label
            );
            // The other client cannot spend it, and nothing changes.
            assert_eq!(
                store
                    .rotate_refresh_token(&hash_secret("rt-2"), "c2", &pair("x", "y"), 10)
                    .await
                    .unwrap(),
                RefreshOutcome::WrongClient
            );
            // A concurrent refresh with the same old token inside the grace window succeeds.
            clock.advance(5);
            assert!(matches!(
                store
                    .rotate_refresh_token(&hash_secret("rt-1"), "c1", &pair("at-2b", "rt-2b"), 10)
                    .await
                    .unwrap(),
                RefreshOutcome::Rotated(_)
            ));
            assert!(
                store
                    .authenticate_access_token(&hash_secret("at-2b"))
                    .await
                    .unwrap()
                    .is_some()
            );
            // Once the successor has been used, the old token is a stolen copy.
            store
                .rotate_refresh_token(&hash_secret("rt-2"), "c1", &pair("at-3", "rt-3"), 10)
                .await
                .unwrap();
            assert_eq!(
                store
                    .rotate_refresh_token(&hash_secret("rt-1"), "c1", &pair("at-4", "rt-4"), 10)
                    .await
                    .unwrap(),
                RefreshOutcome::ReuseDetected {
                    grant_id: grant.id.clone()
                }
            );
            assert!(!store.grant(&grant.id).await.unwrap().unwrap().is_live());
            assert!(
                store
                    .authenticate_access_token(&hash_secret("at-3"))
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(
                store
                    .rotate_refresh_token(&hash_secret("rt-3"), "c1", &pair("a", "b"), 10)
                    .await
                    .unwrap(),
                RefreshOutcome::Revoked
            );
            assert_eq!(
                store
                    .rotate_refresh_token(&hash_secret("never-issued"), "c1", &pair("a", "b"), 10)
                    .await
                    .unwrap(),
                RefreshOutcome::Unknown
            );
        }
    }

    #[tokio::test]
    async fn reuse_after_the_grace_window_revokes_even_if_the_successor_is_unused() {
        for db in TestDatabase::all().await {
            let clock = ManualClock::at(1_000);
            let store = with_user_and_client(&db, clock.clone()).await;
            let grant = store
                .issue_authorization_code(&code("c", "c1"))
                .await
                .unwrap();
            store
                .issue_tokens(&grant, &pair("at-1", "rt-1"))
                .await
                .unwrap();
            store
                .rotate_refresh_token(&hash_secret("rt-1"), "c1", &pair("at-2", "rt-2"), 10)
                .await
                .unwrap();
            clock.advance(11);
            assert!(
                matches!(
                    store
                        .rotate_refresh_token(&hash_secret("rt-1"), "c1", &pair("at-3", "rt-3"), 10)
                        .await
                        .unwrap(),
                    RefreshOutcome::ReuseDetected { .. }
                ),
                "{}",
                db.label
            );
        }
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_inside_the_grace_window_both_succeed() {
        for db in TestDatabase::all().await {
            let store = with_user_and_client(&db, ManualClock::at(1_000)).await;
            let grant = store
                .issue_authorization_code(&code("c", "c1"))
                .await
                .unwrap();
            store
                .issue_tokens(&grant, &pair("at-1", "rt-1"))
                .await
                .unwrap();
            let old = hash_secret("rt-1");
            let (pair_a, pair_b) = (pair("at-a", "rt-a"), pair("at-b", "rt-b"));
            let (a, b) = tokio::join!(
                store.rotate_refresh_token(&old, "c1", &pair_a, 10),
                store.rotate_refresh_token(&old, "c1", &pair_b, 10),
            );
            // Both are inside the grace window: both succeed, and the grant lives.
            assert!(
                matches!(a.unwrap(), RefreshOutcome::Rotated(_)),
                "{}",
                db.label
            );
            assert!(
                matches!(b.unwrap(), RefreshOutcome::Rotated(_)),
                "{}",
                db.label
            );
            assert!(store.grant(&grant.id).await.unwrap().unwrap().is_live());
        }
    }

    #[tokio::test]
    async fn sweeping_removes_what_expired_and_reports_the_next_deadline() {
        for db in TestDatabase::all().await {
            let clock = ManualClock::at(1_000);
            let store = with_user_and_client(&db, clock.clone()).await;
            assert_eq!(store.next_expiry().await.unwrap(), None, "{}", db.label);
            store
                .create_pending_authorization(&pending("s", 1_600))
                .await
                .unwrap();
            let grant = store
                .issue_authorization_code(&code("c", "c1"))
                .await
                .unwrap();
            store.issue_tokens(&grant, &pair("at", "rt")).await.unwrap();
            assert_eq!(store.next_expiry().await.unwrap(), Some(1_060));
            clock.advance(700);
            let swept = store.sweep_expired().await.unwrap();
            assert_eq!(swept.pending_authorizations, 1, "{}", db.label);
            assert_eq!(swept.auth_codes, 1);
            assert_eq!(swept.access_tokens, 0);
            assert_eq!(store.next_expiry().await.unwrap(), Some(4_600));
        }
    }

    #[tokio::test]
    async fn a_sign_in_waiting_on_consent_holds_its_tokens_sealed_until_claimed() {
        for db in TestDatabase::all().await {
            let clock = ManualClock::at(1_000);
            let store = with_user_and_client(&db, clock).await;
            store
                .create_pending_authorization(&pending("s", 1_600))
                .await
                .unwrap();
            store
                .claim_pending_for_callback(&hash_secret("s"))
                .await
                .unwrap()
                .unwrap();
            let bob = UserIdentity {
                id: "2".into(),
                login: "bob".into(),
            };
            store
                .await_consent(
                    &hash_secret("s"),
                    &bob,
                    Some(&credential("HELD-ACCESS", "HELD-REFRESH")),
                    &hash_secret("ticket"),
                    &hash_secret("csrf"),
                )
                .await
                .unwrap();
            assert!(
                store.user("2").await.unwrap().is_none(),
                "no user row for a sign-in awaiting consent ({})",
                db.label
            );
            let claimed = store
                .claim_pending_for_consent(&hash_secret("ticket"), &hash_secret("csrf"))
                .await
                .unwrap()
                .unwrap();
            let (identity, held) = claimed.held.expect("the tokens were held");
            assert_eq!(identity, bob);
            assert_eq!(held.access_token.expose_secret(), "HELD-ACCESS");
            assert_eq!(held.refresh_token.unwrap().expose_secret(), "HELD-REFRESH");
        }
    }
}

#[tokio::test]
async fn the_sweeper_sleeps_until_the_next_expiry() {
    use fjmcp_broker::oauth::sweeper::sweep_once;
    use std::time::Duration;
    let db = TestDatabase::sqlite();
    let clock = ManualClock::at(1_000);
    let store = db.open_with(1, clock.clone()).await;
    assert_eq!(
        sweep_once(&store, &clock).await.unwrap(),
        Duration::from_secs(300),
        "nothing to wait for: the cap"
    );
    store.put_client(&client("c1")).await.unwrap();
    store
        .save_upstream_credential(&alice(), &credential("a", "r"))
        .await
        .unwrap();
    store
        .issue_authorization_code(&fjmcp_broker::store::NewAuthorizationCode {
            code_hash: hash_secret("code"),
            grant: NewGrant {
                user_id: "1".into(),
                client_id: "c1".into(),
                scopes: "mcp".into(),
                resource: "https://mcp.example.com/mcp".into(),
            },
            redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
            code_challenge: "challenge".into(),
            expires_at: 1_060,
        })
        .await
        .unwrap();
    assert_eq!(
        sweep_once(&store, &clock).await.unwrap(),
        Duration::from_secs(61)
    );
    clock.advance(61);
    assert_eq!(
        sweep_once(&store, &clock).await.unwrap(),
        Duration::from_secs(300)
    );
    assert_eq!(
        store.next_expiry().await.unwrap(),
        None,
        "the code was swept"
    );
}

#[tokio::test]
async fn a_dead_credential_revokes_every_grant_of_the_user() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        store.put_client(&client("c1")).await.unwrap();
        store.put_client(&client("c2")).await.unwrap();
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        for c in ["c1", "c2"] {
            store
                .create_grant(&NewGrant {
                    user_id: "1".into(),
                    client_id: c.into(),
                    scopes: "mcp".into(),
                    resource: "https://mcp.example.com/mcp".into(),
                })
                .await
                .unwrap();
        }
        let lock = store.lock_credential("1").await.unwrap();
        assert_eq!(lock.mark_dead(1).await.unwrap(), Some(2), "{}", db.label);
        assert!(store.live_grants_of_user("1").await.unwrap().is_empty());
        assert!(store.upstream_credential("1").await.unwrap().is_none());
    }
}

/// A refresh that read generation 1, then lost the race to a sign-in (which
/// replaces the credential whatever its generation), must neither overwrite
/// the new credential nor declare it dead and revoke the user's grants.
#[tokio::test]
async fn a_sign_in_racing_a_refresh_keeps_the_new_credential_and_the_grants() {
    for db in TestDatabase::all().await {
        let store = db.open().await;
        store.put_client(&client("c1")).await.unwrap();
        store
            .save_upstream_credential(&alice(), &credential("a1", "r1"))
            .await
            .unwrap();
        store
            .create_grant(&NewGrant {
                user_id: "1".into(),
                client_id: "c1".into(),
                scopes: "mcp".into(),
                resource: "https://mcp.example.com/mcp".into(),
            })
            .await
            .unwrap();
        // The refresher has read generation 1 …
        let mut lock = store.lock_credential("1").await.unwrap();
        let (seen, _) = lock.current().await.unwrap().unwrap();
        assert_eq!(seen.generation, 1);
        drop(lock);
        // … a sign-in lands meanwhile …
        let signed_in = store
            .save_upstream_credential(&alice(), &credential("a-new", "r-new"))
            .await
            .unwrap();
        assert_eq!(signed_in, 2);
        // … and the refresher's late writes change nothing.
        let lock = store.lock_credential("1").await.unwrap();
        assert_eq!(lock.mark_dead(1).await.unwrap(), None, "{}", db.label);
        let lock = store.lock_credential("1").await.unwrap();
        assert_eq!(
            lock.replace(1, "alice", &credential("a-stale", "r-stale"))
                .await
                .unwrap(),
            None,
            "{}",
            db.label
        );
        let (user, kept) = store.upstream_credential("1").await.unwrap().unwrap();
        assert_eq!(user.generation, 2);
        assert_eq!(kept.access_token.expose_secret(), "a-new");
        assert_eq!(store.live_grants_of_user("1").await.unwrap().len(), 1);
        // At the current generation the writes do apply.
        let lock = store.lock_credential("1").await.unwrap();
        assert_eq!(
            lock.replace(2, "alice", &credential("a3", "r3"))
                .await
                .unwrap(),
            Some(3)
        );
    }
}

/// Only PostgreSQL serves several instances; SQLite's single instance relies on
/// the pool's in-process single flight instead of a lock.
#[tokio::test]
async fn credential_refreshes_take_turns_across_instances_on_postgres() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    if let Some(db) = TestDatabase::postgres().await {
        let store = db.open().await;
        store
            .save_upstream_credential(&alice(), &credential("a1", "r1"))
            .await
            .unwrap();
        let mut first = store.lock_credential("1").await.unwrap();
        let (user, _) = first.current().await.unwrap().unwrap();
        assert_eq!(user.generation, 1);
        let committed = Arc::new(AtomicBool::new(false));
        let second = {
            let store = store.clone();
            let committed = committed.clone();
            tokio::spawn(async move {
                let mut lock = store.lock_credential("1").await.unwrap();
                let seen_commit = committed.load(Ordering::SeqCst);
                let (user, credential) = lock.current().await.unwrap().unwrap();
                (
                    seen_commit,
                    user.generation,
                    credential.access_token.expose_secret().to_string(),
                )
            })
        };
        // The second refresher is waiting for the row lock before the first finishes.
        db.wait_for_lock_waiters(1).await;
        committed.store(true, Ordering::SeqCst);
        let generation = first
            .replace(1, "alice", &credential("a2", "r2"))
            .await
            .unwrap();
        assert_eq!(generation, Some(2));
        let (seen_commit, seen_generation, seen_token) = second.await.unwrap();
        assert_eq!((seen_generation, seen_token.as_str()), (2, "a2"));
        assert!(seen_commit, "the second refresher waited for the row lock");
    }
}

#[tokio::test]
async fn sessions_live_until_idle_expiry_deletion_or_grant_revocation() {
    for db in TestDatabase::all().await {
        let clock = ManualClock::at(1_000);
        let store = db.open_with(1, clock.clone()).await;
        store.put_client(&client("c1")).await.unwrap();
        store
            .save_upstream_credential(&alice(), &credential("a", "r"))
            .await
            .unwrap();
        let grant = store
            .create_grant(&NewGrant {
                user_id: "1".into(),
                client_id: "c1".into(),
                scopes: "mcp".into(),
                resource: "https://mcp.example.com/mcp".into(),
            })
            .await
            .unwrap();
        for id in ["s1", "s2", "s3"] {
            store
                .create_session(&hash_secret(id), &grant.id, "1", "2025-11-25", 100)
                .await
                .unwrap();
        }
        assert_eq!(
            store.live_sessions_of_user("1").await.unwrap(),
            3,
            "{}",
            db.label
        );
        clock.advance(90);
        let s1 = store
            .touch_session(&hash_secret("s1"), 100)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s1.grant_id, grant.id);
        assert_eq!(s1.protocol_version, "2025-11-25");
        assert_eq!(s1.expires_at, 1_190, "use pushes the idle expiry");
        clock.advance(20);
        assert!(
            store
                .touch_session(&hash_secret("s2"), 100)
                .await
                .unwrap()
                .is_none(),
            "idle too long"
        );
        assert!(
            store
                .touch_session(&hash_secret("s1"), 100)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            !store
                .delete_session(&hash_secret("s1"), "another-grant")
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_session(&hash_secret("s1"), &grant.id)
                .await
                .unwrap()
        );
        assert!(
            store
                .touch_session(&hash_secret("s1"), 100)
                .await
                .unwrap()
                .is_none(),
            "deleted"
        );
        store
            .create_session(&hash_secret("s4"), &grant.id, "1", "2025-06-18", 100)
            .await
            .unwrap();
        store.revoke_grant(&grant.id).await.unwrap();
        assert!(
            store
                .touch_session(&hash_secret("s4"), 100)
                .await
                .unwrap()
                .is_none(),
            "grant revoked"
        );
        assert_eq!(store.live_sessions_of_user("1").await.unwrap(), 0);
        assert!(
            store.sweep_expired().await.unwrap().sessions >= 3,
            "{}",
            db.label
        );
    }
}
