//! `fjmcp-broker admin …`: the real binary against a store filled through the
//! store's own API, on SQLite and (when `FJMCP_TEST_POSTGRES_URL` is set) on a
//! fresh PostgreSQL database per test; and a key rotation under a live broker.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fjmcp_broker::clock::{Clock, ManualClock, SystemClock};
use fjmcp_broker::config::StoreLocation;
use fjmcp_broker::crypto::{OpenError, Sealer, SealingKey, hash_secret};
use fjmcp_broker::store::{
    AuditEvent, ClientKind, GrantRecord, NewClient, NewGrant, NewPendingAuthorization,
    NewTokenPair, Store, StoreError,
};
use fjmcp_broker::upstream::{UpstreamCredential, UserIdentity};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use support::databases::TestDatabase;

/// A database with a sealing key file, as an operator's broker would have.
struct Admin {
    db: TestDatabase,
    dir: tempfile::TempDir,
    key: PathBuf,
}

/// What the binary printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", self.stdout, self.stderr))
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "stdout {}\nstderr {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn store_setting(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
        StoreLocation::Postgres(url) => url.expose_secret().to_string(),
    }
}

impl Admin {
    /// The schema created by a broker's first start, with a key file beside it.
    async fn new(db: TestDatabase) -> Admin {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sealing.key");
        SealingKey::generate(&key).unwrap();
        let admin = Admin { db, dir, key };
        admin
            .store_with(&[&admin.key], Arc::new(SystemClock))
            .await
            .close()
            .await;
        admin
    }

    /// The store opened with these key files (the first seals) and clock.
    async fn store_with(&self, keys: &[&Path], clock: Arc<dyn Clock>) -> Store {
        let mut sealer = Sealer::new(SealingKey::load(keys[0]).unwrap());
        for key in &keys[1..] {
            sealer = sealer.with_previous(SealingKey::load(key).unwrap());
        }
        Store::open(&self.db.location, Arc::new(sealer), clock)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.db.label))
    }

    async fn store(&self) -> Store {
        self.store_with(&[&self.key], Arc::new(SystemClock)).await
    }

    /// `fjmcp-broker admin ARGS` on this store and key, plus `env`.
    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = support::broker::command(self.dir.path());
        command
            .arg("admin")
            .args(args)
            .env("FJMCP_STORE", store_setting(&self.db.location))
            .env("FJMCP_SEALING_KEY_FILE", &self.key);
        for (name, value) in env {
            command.env(name, value);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .expect("admin finishes")
            .expect("admin runs");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }
}

fn client(id: &str, name: &str, redirect: &str) -> NewClient {
    NewClient {
        client_id: id.into(),
        kind: ClientKind::Registered,
        client_name: Some(name.into()),
        redirect_uris: vec![redirect.into()],
        application_type: "web".into(),
        token_endpoint_auth_method: "none".into(),
        client_secret_hash: None,
        metadata: "{}".into(),
        metadata_expires_at: None,
    }
}

fn user(id: &str, login: &str) -> UserIdentity {
    UserIdentity {
        id: id.into(),
        login: login.into(),
    }
}

fn credential(access: &str) -> UpstreamCredential {
    UpstreamCredential {
        access_token: SecretString::from(access.to_string()),
        refresh_token: Some(SecretString::from(format!("{access}-refresh"))),
        access_expires_at: 4_000_000_000,
    }
}

/// The grants of [`seed`].
struct Seeded {
    alice_claude: GrantRecord,
    alice_cursor: GrantRecord,
    bob_claude: GrantRecord,
}

/// alice (1) approved Claude and Cursor, bob (2) approved Claude; alice's
/// Claude grant holds tokens and a 2025-era session.
async fn seed(store: &Store) -> Seeded {
    store
        .put_client(&client(
            "c-claude",
            "Claude",
            "https://claude.ai/api/mcp/auth_callback",
        ))
        .await
        .unwrap();
    store
        .put_client(&client(
            "c-cursor",
            "Cursor",
            "http://127.0.0.1:33418/callback",
        ))
        .await
        .unwrap();
    let mut grants = Vec::new();
    for (id, login, client_id) in [
        ("1", "alice", "c-claude"),
        ("1", "alice", "c-cursor"),
        ("2", "bob", "c-claude"),
    ] {
        store
            .save_upstream_credential(&user(id, login), &credential(&format!("fgj-{login}")))
            .await
            .unwrap();
        store.record_consent(id, client_id, "mcp").await.unwrap();
        grants.push(
            store
                .create_grant(&NewGrant {
                    user_id: id.into(),
                    client_id: client_id.into(),
                    scopes: "mcp".into(),
                    resource: "http://127.0.0.1:8080/mcp".into(),
                })
                .await
                .unwrap(),
        );
        store
            .append_audit(&AuditEvent {
                kind: "user.login".into(),
                user_id: Some(id.into()),
                client_id: Some(client_id.into()),
                detail: serde_json::json!({ "login": login }),
            })
            .await
            .unwrap();
    }
    let now = SystemClock.now();
    store
        .issue_tokens(
            &grants[0],
            &NewTokenPair {
                access_hash: hash_secret("at-alice-claude"),
                access_expires_at: now + 3600,
                refresh: Some((hash_secret("rt-alice-claude"), now + 86_400)),
            },
        )
        .await
        .unwrap();
    store
        .create_session(
            &hash_secret("session-alice"),
            &grants[0].id,
            "1",
            "2025-11-25",
            3600,
        )
        .await
        .unwrap();
    let mut grants = grants.into_iter();
    Seeded {
        alice_claude: grants.next().unwrap(),
        alice_cursor: grants.next().unwrap(),
        bob_claude: grants.next().unwrap(),
    }
}

fn ids(rows: &Value, field: &str) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| row[field].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[tokio::test]
async fn lists_show_users_clients_grants_and_sessions_as_tables_and_json() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let store = admin.store().await;
        let seeded = seed(&store).await;
        let label = admin.db.label;

        let users = admin.run(&["users", "list"]).await.ok();
        assert!(users.stdout.starts_with("ID"), "{label}: {}", users.stdout);
        assert!(
            users.stdout.contains("alice") && users.stdout.contains("stored"),
            "{label}"
        );
        let users = admin.run(&["users", "list", "--json"]).await.ok().json();
        assert_eq!(ids(&users, "login"), ["alice", "bob"], "{label}");
        assert_eq!(users[0]["live_grants"], 2, "{label}");
        assert_eq!(users[0]["credential"], "stored", "{label}");

        let clients = admin.run(&["clients", "list"]).await.ok();
        assert!(
            clients.stdout.contains("claude.ai"),
            "{label}: {}",
            clients.stdout
        );
        assert!(clients.stdout.contains("self-declared"), "{label}");
        let clients = admin.run(&["clients", "list", "--json"]).await.ok().json();
        assert_eq!(
            ids(&clients, "client_id"),
            ["c-claude", "c-cursor"],
            "{label}"
        );
        assert_eq!(clients[0]["live_grants"], 2, "{label}");

        let grants = admin.run(&["--json", "grants", "list"]).await.ok().json();
        assert_eq!(grants.as_array().unwrap().len(), 3, "{label}");
        let alice_claude = grants
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == seeded.alice_claude.id.as_str())
            .unwrap();
        assert!(
            alice_claude["last_used_at"].is_i64(),
            "tokens were issued: {alice_claude}"
        );
        assert_eq!(alice_claude["login"], "alice");
        let by_login = admin
            .run(&["grants", "list", "--user", "alice", "--json"])
            .await
            .ok()
            .json();
        let by_id = admin
            .run(&["grants", "list", "--user", "1", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(by_login, by_id, "{label}");
        assert_eq!(
            sorted(ids(&by_login, "id")),
            sorted(vec![
                seeded.alice_claude.id.clone(),
                seeded.alice_cursor.id.clone()
            ]),
            "{label}"
        );
        let by_client = admin
            .run(&["grants", "list", "--client", "c-claude", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(
            sorted(ids(&by_client, "id")),
            sorted(vec![
                seeded.alice_claude.id.clone(),
                seeded.bob_claude.id.clone()
            ]),
            "{label}"
        );
        let table = admin.run(&["grants", "list"]).await.ok();
        assert!(
            table.stdout.contains(&seeded.bob_claude.id),
            "{label}: {}",
            table.stdout
        );

        let sessions = admin.run(&["sessions", "list", "--json"]).await.ok().json();
        assert_eq!(
            ids(&sessions, "grant_id"),
            [seeded.alice_claude.id.as_str()],
            "{label}"
        );
        assert_eq!(sessions[0]["protocol_version"], "2025-11-25");
        store.close().await;
    }
}

#[tokio::test]
async fn revocation_by_grant_user_or_client_ends_tokens_and_withdraws_consent() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let store = admin.store().await;
        let seeded = seed(&store).await;
        let label = admin.db.label;
        assert!(
            store
                .authenticate_access_token(&hash_secret("at-alice-claude"))
                .await
                .unwrap()
                .is_some()
        );

        let out = admin
            .run(&["grants", "revoke", "--grant", &seeded.alice_claude.id])
            .await
            .ok();
        assert!(
            out.stdout.contains("1 grant(s) revoked"),
            "{label}: {}",
            out.stdout
        );
        assert!(
            store
                .authenticate_access_token(&hash_secret("at-alice-claude"))
                .await
                .unwrap()
                .is_none()
        );
        let sessions = admin.run(&["sessions", "list", "--json"]).await.ok().json();
        assert_eq!(
            sessions,
            serde_json::json!([]),
            "{label}: the session ended with its grant"
        );
        assert_eq!(
            store.consent("1", "c-claude").await.unwrap(),
            None,
            "{label}: consent withdrawn"
        );
        assert!(
            store.consent("1", "c-cursor").await.unwrap().is_some(),
            "{label}: other consents stay"
        );
        assert!(
            store
                .grant(&seeded.alice_cursor.id)
                .await
                .unwrap()
                .unwrap()
                .is_live()
        );
        // Again: known, already revoked, nothing to do.
        let again = admin
            .run(&["grants", "revoke", "--grant", &seeded.alice_claude.id])
            .await
            .ok();
        assert!(
            again.stdout.contains("no live grant"),
            "{label}: {}",
            again.stdout
        );

        let bob = admin
            .run(&["grants", "revoke", "--user", "bob", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(
            bob["revoked"],
            serde_json::json!([seeded.bob_claude.id]),
            "{label}"
        );
        assert_eq!(store.consent("2", "c-claude").await.unwrap(), None);

        let cursor = admin
            .run(&["grants", "revoke", "--client", "c-cursor", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(
            cursor["revoked"],
            serde_json::json!([seeded.alice_cursor.id]),
            "{label}"
        );
        assert!(store.live_grants_of_user("1").await.unwrap().is_empty());

        let audit = store.recent_audit(10).await.unwrap();
        let revoked: Vec<_> = audit
            .iter()
            .filter(|(_, e)| e.kind == "grant.revoked")
            .collect();
        assert_eq!(revoked.len(), 3, "{label}: one event per revoked grant");
        assert!(revoked.iter().all(|(_, e)| e.detail["by"] == "admin"));
        store.close().await;
    }
}

/// Everything the admin command shows of grants, clients and users.
async fn snapshot(admin: &Admin) -> (String, String, String) {
    (
        admin
            .run(&["grants", "list", "--all", "--json"])
            .await
            .ok()
            .stdout,
        admin.run(&["clients", "list", "--json"]).await.ok().stdout,
        admin.run(&["users", "list", "--json"]).await.ok().stdout,
    )
}

#[tokio::test]
async fn unknown_ids_exit_non_zero_and_change_nothing() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let store = admin.store().await;
        seed(&store).await;
        let label = admin.db.label;
        let before = snapshot(&admin).await;
        for (args, named) in [
            (
                &["grants", "revoke", "--grant", "no-such-grant"][..],
                "no-such-grant",
            ),
            (&["grants", "revoke", "--user", "mallory"][..], "mallory"),
            (
                &["grants", "revoke", "--client", "no-such-client"][..],
                "no-such-client",
            ),
            (
                &["clients", "delete", "no-such-client"][..],
                "no-such-client",
            ),
            (&["grants", "list", "--user", "mallory"][..], "mallory"),
            (
                &["grants", "list", "--client", "no-such-client"][..],
                "no-such-client",
            ),
            (&["audit", "--user", "mallory"][..], "mallory"),
        ] {
            let out = admin.run(args).await;
            assert_eq!(
                out.code,
                Some(1),
                "{label} {args:?}: {} {}",
                out.stdout,
                out.stderr
            );
            assert!(
                out.stderr.contains(named),
                "{label} {args:?}: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("nothing was changed"),
                "{label} {args:?}: {}",
                out.stderr
            );
        }
        let usage = admin.run(&["audit", "--since", "banana"]).await;
        assert_eq!(usage.code, Some(2), "{label}: {}", usage.stderr);
        assert!(usage.stderr.contains("--since"));
        assert_eq!(snapshot(&admin).await, before, "{label}: nothing changed");
        store.close().await;
    }
}

#[tokio::test]
async fn deleting_a_client_revokes_and_removes_everything_issued_to_it() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let store = admin.store().await;
        let seeded = seed(&store).await;
        let label = admin.db.label;
        let out = admin.run(&["clients", "delete", "c-claude"]).await.ok();
        assert!(
            out.stdout.contains("2 live grant(s) revoked"),
            "{label}: {}",
            out.stdout
        );
        assert!(store.client("c-claude").await.unwrap().is_none());
        assert!(
            store
                .grant(&seeded.alice_claude.id)
                .await
                .unwrap()
                .is_none(),
            "{label}: grants go with it"
        );
        assert!(
            store
                .authenticate_access_token(&hash_secret("at-alice-claude"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.consent("1", "c-claude").await.unwrap().is_none());
        assert!(
            store
                .grant(&seeded.alice_cursor.id)
                .await
                .unwrap()
                .unwrap()
                .is_live(),
            "{label}"
        );
        let audit = store.recent_audit(1).await.unwrap();
        assert_eq!(audit[0].1.kind, "client.deleted");
        assert_eq!(audit[0].1.detail["grants_revoked"], 2);
        store.close().await;
    }
}

#[tokio::test]
async fn the_audit_trail_is_shown_by_time_and_user() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let store = admin.store().await;
        seed(&store).await;
        let label = admin.db.label;
        // An event two days old, stamped by a clock set back.
        let old = admin
            .store_with(
                &[&admin.key],
                Arc::new(ManualClock::at(SystemClock.now() - 2 * 86_400)),
            )
            .await;
        old.append_audit(&AuditEvent {
            kind: "old.event".into(),
            user_id: Some("1".into()),
            client_id: None,
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
        old.close().await;

        let recent = admin.run(&["audit", "--json"]).await.ok().json();
        assert_eq!(
            ids(&recent, "kind"),
            ["user.login"; 3],
            "{label}: the last 24 h, oldest first"
        );
        let week = admin
            .run(&["audit", "--since", "7d", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(week.as_array().unwrap().len(), 4, "{label}");
        let alice = admin
            .run(&["audit", "--since", "7d", "--user", "alice", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(
            ids(&alice, "kind"),
            ["old.event", "user.login", "user.login"],
            "{label}"
        );
        let newest = admin
            .run(&["audit", "--since", "7d", "--limit", "1", "--json"])
            .await
            .ok()
            .json();
        assert_eq!(newest[0]["user_id"], "2", "{label}: the newest event");
        let table = admin.run(&["audit", "--user", "bob"]).await.ok();
        assert!(
            table.stdout.contains("user.login") && table.stdout.contains("c-claude"),
            "{}",
            table.stdout
        );
        store.close().await;
    }
}

#[tokio::test]
async fn sweep_deletes_what_has_expired_now() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let store = admin.store().await;
        let seeded = seed(&store).await;
        let label = admin.db.label;
        let past = SystemClock.now() - 10;
        store
            .issue_tokens(
                &seeded.bob_claude,
                &NewTokenPair {
                    access_hash: hash_secret("at-expired"),
                    access_expires_at: past,
                    refresh: Some((hash_secret("rt-expired"), past)),
                },
            )
            .await
            .unwrap();
        store
            .create_pending_authorization(&NewPendingAuthorization {
                state_hash: hash_secret("expired-state"),
                client_id: "c-claude".into(),
                redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
                client_state: None,
                code_challenge: "x".repeat(43),
                scopes: "mcp".into(),
                resource: "http://127.0.0.1:8080/mcp".into(),
                upstream_verifier: SecretString::from("v".repeat(43)),
                expires_at: past,
            })
            .await
            .unwrap();
        let swept = admin.run(&["sweep", "--json"]).await.ok().json();
        assert_eq!(swept["access_tokens"], 1, "{label}: {swept}");
        assert_eq!(swept["refresh_tokens"], 1, "{label}");
        assert_eq!(swept["pending_authorizations"], 1, "{label}");
        let again = admin.run(&["sweep"]).await.ok();
        assert!(
            again.stdout.contains("access_tokens: 0 deleted"),
            "{label}: {}",
            again.stdout
        );
        // What has not expired stays.
        assert!(
            store
                .authenticate_access_token(&hash_secret("at-alice-claude"))
                .await
                .unwrap()
                .is_some()
        );
        store.close().await;
    }
}

#[tokio::test]
async fn the_store_is_refused_when_unreachable_missing_or_of_another_schema() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    SealingKey::generate(&key).unwrap();
    let run = |store: String| {
        let key = key.clone();
        let dir = dir.path().to_path_buf();
        async move {
            let mut command = support::broker::command(&dir);
            command
                .args(["admin", "users", "list"])
                .env("FJMCP_STORE", store)
                .env("FJMCP_SEALING_KEY_FILE", key);
            command.output().await.unwrap()
        }
    };
    let out = run("postgres://postgres@127.0.0.1:1/nothing".into()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the store"));
    let missing = dir.path().join("missing.db");
    let out = run(format!("sqlite:{}", missing.display())).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the store"));
    assert!(!missing.exists(), "admin never creates a store");

    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let label = admin.db.label;
        let pool = sqlx::AnyPool::connect(&match &admin.db.location {
            StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreLocation::Postgres(url) => url.expose_secret().to_string(),
        })
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let newer = admin.run(&["users", "list"]).await;
        assert_eq!(newer.code, Some(1), "{label}");
        assert!(
            newer.stderr.contains("newer than this broker knows"),
            "{label}: {}",
            newer.stderr
        );
        sqlx::query("DELETE FROM schema_migrations WHERE version >= $1")
            .bind(fjmcp_broker::store::SCHEMA_VERSION)
            .execute(&pool)
            .await
            .unwrap();
        let older = admin.run(&["users", "list"]).await;
        assert_eq!(older.code, Some(1), "{label}");
        assert!(
            older.stderr.contains("older than this broker's"),
            "{label}: {}",
            older.stderr
        );
        let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            version < fjmcp_broker::store::SCHEMA_VERSION,
            "{label}: admin migrated nothing"
        );
        pool.close().await;
    }
}

#[tokio::test]
async fn seal_key_rotation_reseals_every_sealed_value_once_the_configuration_names_the_key() {
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let label = admin.db.label;
        let old = admin.key.clone();
        let new = admin.dir.path().join("new.key");
        SealingKey::generate(&new).unwrap();
        let store = admin.store().await;
        seed(&store).await;
        let verifier = SecretString::from("w".repeat(43));
        store
            .create_pending_authorization(&NewPendingAuthorization {
                state_hash: hash_secret("pending-state"),
                client_id: "c-claude".into(),
                redirect_uri: "https://claude.ai/api/mcp/auth_callback".into(),
                client_state: None,
                code_challenge: "x".repeat(43),
                scopes: "mcp".into(),
                resource: "http://127.0.0.1:8080/mcp".into(),
                upstream_verifier: verifier.clone(),
                expires_at: SystemClock.now() + 600,
            })
            .await
            .unwrap();
        // A sign-in waiting on the consent page holds its Forgejo tokens sealed.
        store
            .await_consent(
                &hash_secret("pending-state"),
                &user("9", "dave"),
                Some(&credential("fgj-held")),
                &hash_secret("ticket"),
                &hash_secret("csrf"),
            )
            .await
            .unwrap();
        store
            .create_account_login(
                &hash_secret("acct.state"),
                &hash_secret("browser"),
                &verifier,
                SystemClock.now() + 600,
            )
            .await
            .unwrap();
        store.close().await;
        let new_arg = new.display().to_string();

        // Not yet named by the configuration: refused, nothing touched.
        let refused = admin
            .run(&["seal-key", "rotate", "--new-key-file", &new_arg])
            .await;
        assert_eq!(refused.code, Some(2), "{label}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("does not name"),
            "{label}: {}",
            refused.stderr
        );
        let only_old = admin.store_with(&[&old], Arc::new(SystemClock)).await;
        assert!(only_old.upstream_credential("1").await.unwrap().is_some());
        only_old.close().await;

        let switched = [
            ("FJMCP_SEALING_KEY_FILE", new_arg.as_str()),
            ("FJMCP_SEALING_PREVIOUS_KEY_FILES", old.to_str().unwrap()),
        ];
        let report = admin
            .run_with(
                &["seal-key", "rotate", "--new-key-file", &new_arg, "--json"],
                &switched,
            )
            .await
            .ok()
            .json();
        let resealed: Vec<(String, u64)> = report["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["column"].as_str().unwrap().to_string(),
                    c["resealed"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            resealed,
            [
                ("users.sealed_access_token".to_string(), 2),
                ("users.sealed_refresh_token".to_string(), 2),
                (
                    "pending_authorizations.sealed_upstream_verifier".to_string(),
                    1
                ),
                (
                    "pending_authorizations.sealed_upstream_access".to_string(),
                    1
                ),
                (
                    "pending_authorizations.sealed_upstream_refresh".to_string(),
                    1
                ),
                ("account_logins.sealed_upstream_verifier".to_string(), 1),
            ],
            "{label}"
        );
        assert_eq!(report["remaining"], 0, "{label}");
        // Once more: nothing left to do.
        let again = admin
            .run_with(
                &["seal-key", "rotate", "--new-key-file", &new_arg],
                &switched,
            )
            .await
            .ok();
        assert!(
            again.stdout.contains("every sealed value is now under key"),
            "{label}: {}",
            again.stdout
        );
        assert!(
            again
                .stdout
                .contains("can be removed from sealing_previous_key_files")
        );

        // The new key alone opens everything; the old one alone nothing.
        let only_new = admin.store_with(&[&new], Arc::new(SystemClock)).await;
        let (_, opened) = only_new.upstream_credential("1").await.unwrap().unwrap();
        assert_eq!(opened.access_token.expose_secret(), "fgj-alice", "{label}");
        assert_eq!(
            opened.refresh_token.unwrap().expose_secret(),
            "fgj-alice-refresh"
        );
        let pending = only_new
            .claim_pending_for_consent(&hash_secret("ticket"), &hash_secret("csrf"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            pending.request.upstream_verifier.expose_secret(),
            verifier.expose_secret()
        );
        let (_, held) = pending.held.expect("the held sign-in");
        assert_eq!(held.access_token.expose_secret(), "fgj-held");
        assert_eq!(
            held.refresh_token.unwrap().expose_secret(),
            "fgj-held-refresh"
        );
        let login = only_new
            .claim_account_login(&hash_secret("acct.state"), &hash_secret("browser"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.expose_secret(), verifier.expose_secret());
        only_new.close().await;
        let only_old = admin.store_with(&[&old], Arc::new(SystemClock)).await;
        assert!(matches!(
            only_old.upstream_credential("1").await,
            Err(StoreError::Sealed(OpenError::UnknownKey(_)))
        ));
        only_old.close().await;

        // A value under a key nobody configured is reported, left alone, and fails the run.
        let stray = admin.dir.path().join("stray.key");
        SealingKey::generate(&stray).unwrap();
        let foreign = admin.store_with(&[&stray], Arc::new(SystemClock)).await;
        foreign
            .save_upstream_credential(&user("3", "carol"), &credential("fgj-carol"))
            .await
            .unwrap();
        foreign.close().await;
        let incomplete = admin
            .run_with(
                &["seal-key", "rotate", "--new-key-file", &new_arg],
                &switched,
            )
            .await;
        assert_eq!(incomplete.code, Some(1), "{label}: {}", incomplete.stderr);
        assert!(
            incomplete
                .stdout
                .contains("cannot open users.sealed_access_token of row 3"),
            "{label}: {}",
            incomplete.stdout
        );
        assert!(
            incomplete
                .stderr
                .contains("2 sealed value(s) are still not under key"),
            "{label}: {}",
            incomplete.stderr
        );
    }
}

#[tokio::test]
async fn every_sealed_column_of_the_schema_is_re_sealed_by_a_rotation() {
    // The rotation's list of sealed columns (SEALED_COLUMNS) against the
    // schema: a new sealed_* column that is not listed fails here.
    for db in TestDatabase::all().await {
        let admin = Admin::new(db).await;
        let pool = sqlx::AnyPool::connect(&match &admin.db.location {
            StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreLocation::Postgres(url) => url.expose_secret().to_string(),
        })
        .await
        .unwrap();
        let query = match admin.db.location {
            StoreLocation::Sqlite(_) => {
                "SELECT m.name || '.' || p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND p.name LIKE 'sealed\\_%' ESCAPE '\\' ORDER BY 1"
            }
            StoreLocation::Postgres(_) => {
                "SELECT table_name || '.' || column_name AS c FROM information_schema.columns
                 WHERE table_schema = 'public' AND column_name LIKE 'sealed\\_%' ORDER BY 1"
            }
        };
        let mut in_schema: Vec<String> = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
        pool.close().await;
        in_schema.sort();
        // Run a rotation to the same key: its report names every column it handles.
        let key = admin.key.display().to_string();
        let report = admin
            .run(&["seal-key", "rotate", "--new-key-file", &key, "--json"])
            .await
            .ok()
            .json();
        let mut rotated: Vec<String> = report["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["column"].as_str().unwrap().to_string())
            .collect();
        rotated.sort();
        assert_eq!(rotated, in_schema, "{}", admin.db.label);
    }
}

#[tokio::test]
async fn a_running_broker_opens_old_and_new_keys_during_a_rotation() {
    use support::mcp::{call_modern, stack, text_of, token_of};
    let mut stack = stack().await;
    let token = token_of(&stack, "alice").await;
    async fn whoami(stack: &support::oauth::Stack, token: &str) -> String {
        let reply = call_modern(
            stack,
            token,
            serde_json::json!(1),
            "tools/call",
            serde_json::json!({"name": "whoami", "arguments": {}}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        text_of(&reply.json())
    }
    assert_eq!(whoami(&stack, &token).await, "alice");

    let dir = stack.broker.dir.clone();
    let old = dir.join("broker.db.sealing-key");
    let new = dir.join("new.key");
    SealingKey::generate(&new).unwrap();
    let (old_arg, new_arg) = (old.display().to_string(), new.display().to_string());
    let switched = [
        ("FJMCP_SEALING_KEY_FILE", new_arg.as_str()),
        ("FJMCP_SEALING_PREVIOUS_KEY_FILES", old_arg.as_str()),
    ];
    // 1. The broker seals with the new key and still opens the old one's values:
    //    the restarted broker's fresh child gets alice's token sealed under the old key.
    let _stopped = stack.broker.restart_with(&switched).await;
    assert_eq!(whoami(&stack, &token).await, "alice");
    // 2. Everything is re-sealed while it serves.
    let mut command = support::broker::command(&dir);
    command.args(["admin", "seal-key", "rotate", "--new-key-file", &new_arg]);
    for (name, value) in switched {
        command.env(name, value);
    }
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 3. The old key retired: the broker still serves alice.
    let _stopped = stack
        .broker
        .restart_with(&[("FJMCP_SEALING_PREVIOUS_KEY_FILES", "")])
        .await;
    assert_eq!(whoami(&stack, &token).await, "alice");
    let logs = stack.broker.log_text();
    assert!(
        !logs.contains(&std::fs::read_to_string(&new).unwrap().trim()[..16]),
        "no key material in logs"
    );
}
