//! Two brokers on one PostgreSQL database, as behind a load balancer.

use super::broker::Broker;
use super::oauth::{BROKER_CLIENT_ID, Stack};

/// Two brokers on one PostgreSQL database with one sealing key, as behind a
/// load balancer: the stack's broker (A) and a second one (B) with the same
/// public URL that also accepts its own address as `Host`.
pub struct Pair {
    pub stack: Stack,
    pub second: Broker,
    /// The second broker's own directory and the shared key file.
    _state: Vec<tempfile::TempDir>,
    /// Dropped last: the database goes (forcibly) after both brokers.
    _database: super::databases::TestDatabase,
}

impl Pair {
    /// `None` when no PostgreSQL server is configured for the tests.
    pub async fn start(
        extra: &[(&str, &str)],
        double: impl FnOnce(forgejo_double::Config) -> forgejo_double::Config,
    ) -> Option<Pair> {
        let database = super::databases::TestDatabase::postgres().await?;
        let fjmcp_broker::config::StoreLocation::Postgres(url) = &database.location else {
            unreachable!()
        };
        use secrecy::ExposeSecret;
        let url = url.expose_secret().to_string();
        let state = tempfile::tempdir().unwrap();
        let key = state.path().join("sealing-key");
        fjmcp_broker::crypto::SealingKey::generate(&key).unwrap();
        let key = key.display().to_string();
        let child = super::children::fixture_child().display().to_string();
        let mut env: Vec<(&str, &str)> = vec![
            ("FJMCP_STORE", &url),
            ("FJMCP_SEALING_KEY_FILE", &key),
            ("FJMCP_CHILD_COMMAND", &child),
        ];
        env.extend_from_slice(extra);
        let stack = Stack::start_with(&env, double).await;
        let listener = super::broker::listener();
        let own = listener.local_addr().unwrap().to_string();
        let forgejo = stack.double.url();
        let mut second_env = env.clone();
        second_env.extend_from_slice(&[
            ("FJMCP_PUBLIC_URL", stack.issuer.as_str()),
            ("FJMCP_FORGEJO_URL", &forgejo),
            ("FJMCP_FORGEJO_CLIENT_ID", BROKER_CLIENT_ID),
            (
                "FJMCP_FORGEJO_CLIENT_SECRET",
                super::oauth::BROKER_CLIENT_SECRET,
            ),
            ("FJMCP_ALLOWED_HOSTS", &own),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let second = Broker::start_on(listener, dir.path(), &second_env).await;
        Some(Pair {
            stack,
            second,
            _state: vec![state, dir],
            _database: database,
        })
    }

    /// The second instance's `/mcp`.
    pub fn second_mcp(&self) -> String {
        format!("{}/mcp", self.second.url)
    }
}
