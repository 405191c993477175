//! The per-user child pool with real children (the fixture child), a real
//! store and the Forgejo test double. Reaping and rotation run on an injected
//! clock; nothing waits for a timeout to pass.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fjmcp_broker::children::{CallError, Pool, PoolError, PoolSettings, ResourceLimits};
use fjmcp_broker::clock::ManualClock;
use fjmcp_broker::credentials::{CredentialSettings, Credentials};
use fjmcp_broker::forgejo::{EndpointOverrides, ForgejoClient};
use fjmcp_broker::store::{NewGrant, Store};
use fjmcp_broker::upstream::UserIdentity;
use forgejo_double::{App, Config, Endpoint, Fault, ForgejoDouble, User};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::databases::TestDatabase;
use support::mcp::{text_of, tool_call};
use support::wait::{REACTION, eventually};

const CALLBACK: &str = "http://127.0.0.1:1/oauth/callback";

struct Fixture {
    double: ForgejoDouble,
    store: Store,
    forgejo: ForgejoClient,
    credentials: Credentials,
    clock: ManualClock,
    _db: TestDatabase,
    _work: tempfile::TempDir,
    settings: PoolSettings,
}

impl Fixture {
    async fn new() -> Fixture {
        let double = ForgejoDouble::start(
            Config::default()
                .with_user(User::new(1, "alice", "pw"))
                .with_user(User::new(2, "bob", "pw"))
                .with_app(App::confidential("broker", "secret", &[CALLBACK])),
        )
        .await
        .unwrap();
        let db = TestDatabase::sqlite();
        // The double's tokens expire in 3600 s of *its* clock (real time); the
        // pool's clock starts at real now so expiry comparisons line up.
        let clock = ManualClock::at(fjmcp_broker::clock::Clock::now(
            &fjmcp_broker::clock::SystemClock,
        ));
        let store = db.open_with(1, clock.clone()).await;
        let forgejo = ForgejoClient::new(
            &double.url(),
            "broker",
            SecretString::from("secret".to_string()),
            "openid profile",
            EndpointOverrides::default(),
        );
        let work = tempfile::tempdir().unwrap();
        let settings = PoolSettings {
            command: vec![support::children::fixture_child().display().to_string()],
            inherited_env: vec![support::children::path_env()],
            forgejo_url: double.url(),
            idle_timeout: Duration::from_secs(900),
            reap_interval: Duration::from_secs(30),
            rotate_interval: Duration::from_secs(60),
            expiry_margin: Duration::from_secs(30),
            max_children: 50,
            max_in_flight_per_child: 32,
            request_timeout: Duration::from_secs(30),
            limits: ResourceLimits::default(),
            work_root: work.path().join("children"),
            run_as: None,
        };
        let credentials = Credentials::new(
            store.clone(),
            forgejo.clone(),
            Arc::new(clock.clone()),
            CredentialSettings {
                min_validity: Duration::from_secs(60),
                refresh_lead: Duration::from_secs(300),
                check_interval: Duration::from_secs(300),
            },
        );
        Fixture {
            double,
            store,
            forgejo,
            credentials,
            clock,
            _db: db,
            _work: work,
            settings,
        }
    }

    /// Signs `login` in at the double and stores their credential, like the callback does.
    async fn sign_in(&self, login: &str) -> String {
        self.double.set_auto_login(Some(login));
        let (verifier, challenge) = fjmcp_broker::crypto::pkce_pair();
        let url = self
            .forgejo
            .authorize_url(CALLBACK, "state", &challenge)
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let location = http.get(url).send().await.unwrap().headers()["location"]
            .to_str()
            .unwrap()
            .to_string();
        let code = support::oauth::query_of(&location)["code"].clone();
        use secrecy::ExposeSecret;
        let tokens = self
            .forgejo
            .exchange_code(&code, verifier.expose_secret(), CALLBACK)
            .await
            .unwrap();
        let identity: UserIdentity = self.forgejo.userinfo(&tokens.access_token).await.unwrap();
        self.credentials
            .save_sign_in(
                &identity,
                &tokens.into_credential(fjmcp_broker::clock::Clock::now(&self.clock)),
            )
            .await
            .unwrap();
        identity.id
    }

    fn pool(&self) -> Pool {
        self.pool_with(self.settings.clone())
    }

    fn pool_with(&self, settings: PoolSettings) -> Pool {
        Pool::new(
            settings,
            self.credentials.clone(),
            Arc::new(self.clock.clone()),
            tokio_util::task::TaskTracker::new(),
        )
    }
}

/// Why a call through the pool failed: not admitted, or failed on the child.
#[derive(Debug)]
enum Outcome {
    Refused(PoolError),
    Failed(CallError),
}

/// Admits a request of `user` and sends it to their child.
async fn call(pool: &Pool, user: &str, request: Value) -> Result<Value, Outcome> {
    let lease = pool.admit(user, None).await.map_err(Outcome::Refused)?;
    lease.call(request, None).await.map_err(Outcome::Failed)
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn each_user_gets_an_own_child_with_only_their_token() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let bob = f.sign_in("bob").await;
    let pool = f.pool();
    let a = call(&pool, &alice, tool_call(json!(1), "whoami", json!({})))
        .await
        .unwrap();
    let b = call(&pool, &bob, tool_call(json!(1), "whoami", json!({})))
        .await
        .unwrap();
    assert_eq!(text_of(&a), "alice");
    assert_eq!(text_of(&b), "bob");
    assert_eq!(a["id"], json!(1));
    assert_ne!(pool.child_pid(&alice), pool.child_pid(&bob));
    assert_eq!(pool.live_children(), 2);

    let env = call(&pool, &alice, tool_call(json!("e"), "env_names", json!({})))
        .await
        .unwrap();
    let names: Vec<&str> = text_of(&env).leak().lines().collect();
    assert_eq!(
        names,
        vec![
            "FORGEJO_ACCESS_TOKEN",
            "FORGEJO_URL",
            "HOME",
            "PATH",
            "TMPDIR"
        ]
    );

    let lease = pool.admit(&alice, None).await.unwrap();
    assert_eq!(
        lease.initialize_result()["serverInfo"]["name"],
        "fjmcp-fixture-child"
    );
    drop(lease);
    pool.shutdown().await;
    assert_eq!(pool.live_children(), 0);
}

#[tokio::test]
async fn concurrent_callers_with_colliding_ids_get_their_own_answers() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    let mut tasks = Vec::new();
    for n in 0..24 {
        let pool = pool.clone();
        let alice = alice.clone();
        let id = if n % 2 == 0 { json!(1) } else { json!("1") };
        tasks.push(tokio::spawn(async move {
            let response = call(
                &pool,
                &alice,
                tool_call(id.clone(), "echo", json!({"text": format!("caller {n}")})),
            )
            .await
            .unwrap();
            assert_eq!(response["id"], id, "the caller's id comes back exactly");
            assert_eq!(text_of(&response), format!("caller {n}"));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        pool.stats()
            .started
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one child served every caller"
    );
    assert_eq!(
        f.double.calls(Endpoint::ApiUser),
        2,
        "one check by the broker before the start, one by the child at its start"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn idle_children_are_reaped_and_the_next_request_starts_a_new_one() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    call(
        &pool,
        &alice,
        tool_call(json!(1), "echo", json!({"text": "x"})),
    )
    .await
    .unwrap();
    let first = pool.child_pid(&alice).unwrap();
    f.clock.advance(899);
    pool.reap_idle().await;
    assert_eq!(pool.child_pid(&alice), Some(first), "not idle long enough");
    f.clock.advance(1);
    pool.reap_idle().await;
    assert_eq!(pool.child_pid(&alice), None);
    wait_until(|| pool.live_children() == 0).await;
    assert_eq!(
        pool.stats()
            .stopped_idle
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let again = call(
        &pool,
        &alice,
        tool_call(json!(2), "echo", json!({"text": "y"})),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&again), "y");
    assert_ne!(pool.child_pid(&alice), Some(first));
    pool.shutdown().await;
}

#[tokio::test]
async fn rotation_under_load_fails_no_request_and_the_new_child_holds_the_new_token() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    call(
        &pool,
        &alice,
        tool_call(json!(0), "echo", json!({"text": "warm"})),
    )
    .await
    .unwrap();
    let old_pid = pool.child_pid(&alice).unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (pool, alice, stop, answered) =
            (pool.clone(), alice.clone(), stop.clone(), answered.clone());
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let request = tool_call(json!(n), "sleep", json!({"ms": 20}));
                match call(&pool, &alice, request).await {
                    Ok(response) if response.get("result").is_some() => ok += 1,
                    other => failed.push(format!("worker {worker}: {other:?}")),
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (ok, failed)
        }));
    }
    let answered_so_far = || answered.load(std::sync::atomic::Ordering::SeqCst);
    // Every worker has had answers from the old child before the rotation.
    assert!(eventually(REACTION, || answered_so_far() >= 8).await);
    // 3500 s later (for the broker and for Forgejo) the token expires within the
    // 300 s lead: rotate.
    f.clock.advance(3_500);
    f.double.advance_clock(Duration::from_secs(3_500));
    pool.follow_credentials().await;
    let new_pid = pool.child_pid(&alice).unwrap();
    assert_ne!(new_pid, old_pid, "a new child serves the user");
    // Requests keep being answered across the switch, now by the new child.
    let at_rotation = answered_so_far();
    assert!(eventually(REACTION, || answered_so_far() >= at_rotation + 8).await);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total = 0;
    for task in load {
        let (ok, failed) = task.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        total += ok;
    }
    assert!(total > 10, "the load ran ({total} requests)");
    assert_eq!(f.double.token_stats().refreshes, 1);
    let (user, _) = f.store.upstream_credential(&alice).await.unwrap().unwrap();
    assert_eq!(user.generation, 2);
    // Once the old access token has expired at Forgejo, only the new child's works.
    f.double.advance_clock(Duration::from_secs(200));
    let who = call(&pool, &alice, tool_call(json!("w"), "whoami", json!({})))
        .await
        .unwrap();
    assert_eq!(text_of(&who), "alice", "{who}");
    wait_until(|| pool.live_children() == 1).await;
    pool.shutdown().await;
}

#[tokio::test]
async fn a_refused_refresh_kills_the_credential_revokes_grants_and_stops_the_child() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let store = &f.store;
    store
        .put_client(&fjmcp_broker::store::NewClient {
            client_id: "c".into(),
            kind: fjmcp_broker::store::ClientKind::Registered,
            client_name: None,
            redirect_uris: vec!["https://claude.ai/cb".into()],
            application_type: "web".into(),
            token_endpoint_auth_method: "none".into(),
            client_secret_hash: None,
            metadata: "{}".into(),
            metadata_expires_at: None,
        })
        .await
        .unwrap();
    store
        .create_grant(&NewGrant {
            user_id: alice.clone(),
            client_id: "c".into(),
            scopes: "mcp".into(),
            resource: "https://mcp.example.com/mcp".into(),
        })
        .await
        .unwrap();
    let pool = f.pool();
    call(
        &pool,
        &alice,
        tool_call(json!(1), "echo", json!({"text": "x"})),
    )
    .await
    .unwrap();
    assert!(
        f.double.revoke_grant("alice", "broker"),
        "the user revoked the app in Forgejo"
    );
    f.clock.advance(3_500);
    pool.follow_credentials().await;
    assert_eq!(pool.child_pid(&alice), None);
    assert!(store.live_grants_of_user(&alice).await.unwrap().is_empty());
    assert!(store.upstream_credential(&alice).await.unwrap().is_none());
    match call(
        &pool,
        &alice,
        tool_call(json!(2), "echo", json!({"text": "x"})),
    )
    .await
    {
        Err(Outcome::Refused(PoolError::CredentialDead)) => {}
        other => panic!("{other:?}"),
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_transient_refresh_failure_keeps_the_child_and_retries_later() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    call(
        &pool,
        &alice,
        tool_call(json!(1), "echo", json!({"text": "x"})),
    )
    .await
    .unwrap();
    let pid = pool.child_pid(&alice);
    f.double
        .inject_fault(Endpoint::Token, Fault::ServerError, 1);
    f.clock.advance(3_500);
    pool.follow_credentials().await;
    assert_eq!(pool.child_pid(&alice), pid, "the old child keeps serving");
    pool.follow_credentials().await;
    assert_eq!(
        pool.child_pid(&alice),
        pid,
        "no retry before the backoff passes"
    );
    f.clock.advance(11);
    pool.follow_credentials().await;
    assert_ne!(pool.child_pid(&alice), pid, "rotated on the retry");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crash_mid_request_is_a_backend_exit_and_the_next_request_works() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    match call(&pool, &alice, tool_call(json!(1), "crash", json!({}))).await {
        Err(Outcome::Failed(CallError::Exited)) => {}
        other => panic!("{other:?}"),
    }
    let next = call(
        &pool,
        &alice,
        tool_call(json!(2), "echo", json!({"text": "back"})),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&next), "back");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_child_that_keeps_dying_is_not_respawned_in_a_tight_loop() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let mut settings = f.settings.clone();
    settings.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo broken >&2; exit 1".into(),
    ];
    let pool = f.pool_with(settings);
    let failures = || {
        pool.stats()
            .start_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for attempt in 0..4 {
        match call(&pool, &alice, tool_call(json!(attempt), "echo", json!({}))).await {
            Err(Outcome::Refused(PoolError::BackendFailedToStart(why))) => {
                if attempt >= 2 {
                    assert!(why.contains("next attempt in"), "{why}");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        failures(),
        2,
        "a single failure is retried at once, then requests fail fast"
    );
    f.clock.advance(2);
    let _ = call(&pool, &alice, tool_call(json!(9), "echo", json!({}))).await;
    assert_eq!(failures(), 3, "tries again after the backoff");
    let _ = call(&pool, &alice, tool_call(json!(10), "echo", json!({}))).await;
    assert_eq!(failures(), 3, "and the backoff grows");
}

#[tokio::test]
async fn caps_refuse_with_distinct_errors() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let bob = f.sign_in("bob").await;
    let mut settings = f.settings.clone();
    settings.max_children = 1;
    settings.max_in_flight_per_child = 1;
    let pool = f.pool_with(settings);
    // One request admitted holds the child's only slot.
    let held = pool.admit(&alice, None).await.unwrap();
    match call(
        &pool,
        &alice,
        tool_call(json!(2), "echo", json!({"text": "x"})),
    )
    .await
    {
        Err(Outcome::Refused(PoolError::Busy { .. })) => {}
        other => panic!("{other:?}"),
    }
    match call(
        &pool,
        &bob,
        tool_call(json!(3), "echo", json!({"text": "x"})),
    )
    .await
    {
        Err(Outcome::Refused(PoolError::AtCapacity { .. })) => {}
        other => panic!("{other:?}"),
    }
    let answered = held
        .call(tool_call(json!(1), "echo", json!({"text": "y"})), None)
        .await
        .unwrap();
    assert_eq!(text_of(&answered), "y");
    drop(held);
    let freed = call(
        &pool,
        &alice,
        tool_call(json!(4), "echo", json!({"text": "z"})),
    );
    assert_eq!(
        text_of(&freed.await.unwrap()),
        "z",
        "the slot is free again"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn a_thousand_spawn_and_stop_cycles_leak_no_descriptors_or_zombies() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // Warm up once so lazily created descriptors (runtime, HTTP pools) exist.
    pool.admit(&alice, None).await.unwrap();
    f.clock.advance(1_000);
    pool.reap_idle().await;
    wait_until(|| pool.live_children() == 0).await;
    let before = fds();
    for _ in 0..1_000 {
        pool.admit(&alice, None).await.unwrap();
        f.clock.advance(1_000);
        pool.reap_idle().await;
    }
    wait_until(|| pool.live_children() == 0).await;
    assert_eq!(
        pool.stats()
            .started
            .load(std::sync::atomic::Ordering::Relaxed),
        1_001
    );
    let after = fds();
    assert!(
        after <= before + 2,
        "descriptors leaked: {before} before, {after} after"
    );
    let zombies: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            fields.first() == Some(&"Z")
                && fields.get(1) == Some(&std::process::id().to_string().as_str())
        })
        .collect();
    assert!(zombies.is_empty(), "zombie children: {zombies:?}");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_before_a_child_starts_with_it() {
    let f = Fixture::new().await;
    let alice = f.sign_in("alice").await;
    let pool = f.pool();
    f.clock.advance(3_600);
    f.double.advance_clock(Duration::from_secs(3_600));
    let mut calls = Vec::new();
    for n in 0..5 {
        let (pool, alice) = (pool.clone(), alice.clone());
        calls.push(tokio::spawn(async move {
            call(&pool, &alice, tool_call(json!(n), "whoami", json!({}))).await
        }));
    }
    for call in calls {
        assert_eq!(text_of(&call.await.unwrap().unwrap()), "alice");
    }
    assert_eq!(f.double.token_stats().refreshes, 1, "single flight");
    assert_eq!(
        pool.stats()
            .started
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    pool.shutdown().await;
}
