//! The command line: `serve`, `check-config`, `admin …`, `--version`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Setting, settings};

/// OAuth 2.1 + Streamable HTTP broker in front of per-user forgejo-mcp children.
#[derive(Debug, Parser)]
#[command(name = "fjmcp-broker", version = crate::version::VERSION, long_version = crate::version::LONG)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the broker.
    Serve(SettingFlags),
    /// Validate the configuration and print it, secrets redacted; then look for
    /// the child command and print its `--version`.
    CheckConfig(CheckConfigArgs),
    /// Look at and change the broker's store: users, clients, grants, sessions,
    /// the audit trail, expired rows, the sealing key. Uses the same settings
    /// as `serve`.
    Admin(AdminArgs),
}

impl Command {
    /// The setting flags every command takes.
    pub fn flags(&self) -> &SettingFlags {
        match self {
            Command::Serve(flags) => flags,
            Command::CheckConfig(args) => &args.settings,
            Command::Admin(args) => &args.settings,
        }
    }
}

/// `check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub settings: SettingFlags,
    /// Do not look for the child command nor run it (to check a configuration
    /// on another machine than the broker's)
    #[arg(long)]
    pub skip_child_check: bool,
}

/// `admin`: its setting flags may be given before or after the subcommand.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub settings: SettingFlags,
    /// Print JSON instead of a table or text
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Forgejo users who signed in through the broker.
    Users {
        #[command(subcommand)]
        action: ListAction,
    },
    /// MCP clients (registered, or known by their metadata document).
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Grants: one per user and authorization of a client.
    Grants {
        #[command(subcommand)]
        action: GrantsAction,
    },
    /// Live 2025-era MCP sessions.
    Sessions {
        #[command(subcommand)]
        action: ListAction,
    },
    /// The audit trail: sign-ins, consents, revocations.
    Audit(AuditArgs),
    /// Delete expired authorization requests, codes, tokens and sessions now.
    Sweep,
    /// The key that seals users' Forgejo tokens at rest.
    SealKey {
        #[command(subcommand)]
        action: SealKeyAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListAction {
    /// List them.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientsAction {
    /// List them.
    List,
    /// Delete a client: revoke its grants, forget it and everything issued to it.
    Delete {
        /// The client_id.
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantsAction {
    /// List live grants (with --all, revoked ones too).
    List(GrantsListArgs),
    /// Revoke grants (their tokens and sessions end) and withdraw the consents,
    /// so each client must be approved again.
    Revoke(GrantsRevokeArgs),
}

#[derive(Debug, Args)]
pub struct GrantsListArgs {
    /// Only this user's (Forgejo user id or login)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only this client's (client_id)
    #[arg(long, value_name = "CLIENT")]
    pub client: Option<String>,
    /// Revoked grants too
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct GrantsRevokeArgs {
    /// Every live grant of this user (Forgejo user id or login)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Every live grant of this client (client_id)
    #[arg(long, value_name = "CLIENT")]
    pub client: Option<String>,
    /// This grant (its id, from `admin grants list`)
    #[arg(long, value_name = "GRANT")]
    pub grant: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Events of the last DURATION (e.g. 30m, 24h, 7d)
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub since: String,
    /// Only events of this user (Forgejo user id or login)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// At most this many events (the newest)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum SealKeyAction {
    /// Re-seal every sealed value under the key in FILE. The configuration
    /// must already name FILE (as sealing_key_file, the old key in
    /// sealing_previous_key_files), so brokers can open what is re-sealed.
    Rotate {
        /// The new key file (32 bytes, 64 hex characters; mode 0600)
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

/// Every setting as a flag; each also reads the environment variable named in
/// its help, and the TOML file given with --config. Precedence: flag >
/// environment > file > default. Global, so `admin`'s subcommands take them
/// after their own names too.
#[derive(Debug, Args, Default)]
pub struct SettingFlags {
    /// TOML configuration file [env: FJMCP_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Public base URL: issuer and MCP resource base; https, or http on loopback (required) [env: FJMCP_PUBLIC_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// Address where /metrics (Prometheus) is served; unset: no metrics endpoint. Never the public listener [env: FJMCP_METRICS_LISTEN]
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Address to listen on, or `stdin` for a listening socket passed as standard input (systemd socket activation) [env: FJMCP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// sqlite:<path> or postgres://… [env: FJMCP_STORE] [default: sqlite:fjmcp-broker.db]
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// 32-byte key sealing Forgejo tokens at rest; generated beside a SQLite database if absent, required with PostgreSQL [env: FJMCP_SEALING_KEY_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub sealing_key_file: Option<String>,
    /// Comma-separated retired key files that can still open older values during a key rotation [env: FJMCP_SEALING_PREVIOUS_KEY_FILES]
    #[arg(long, global = true, value_name = "FILES")]
    pub sealing_previous_key_files: Option<String>,
    /// Base URL of the Forgejo instance (required) [env: FJMCP_FORGEJO_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub forgejo_url: Option<String>,
    /// Client id of the broker's OAuth2 application in Forgejo (required) [env: FJMCP_FORGEJO_CLIENT_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub forgejo_client_id: Option<String>,
    /// Its client secret; prefer --forgejo-client-secret-file, argv is visible to other users [env: FJMCP_FORGEJO_CLIENT_SECRET]
    #[arg(long, global = true, value_name = "SECRET")]
    pub forgejo_client_secret: Option<String>,
    /// File holding the client secret [env: FJMCP_FORGEJO_CLIENT_SECRET_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub forgejo_client_secret_file: Option<String>,
    /// Scopes requested from Forgejo [env: FJMCP_FORGEJO_SCOPES] [default: openid profile]
    #[arg(long, global = true, value_name = "SCOPES")]
    pub forgejo_scopes: Option<String>,
    /// Override of Forgejo's authorize endpoint (else from its OpenID discovery document) [env: FJMCP_FORGEJO_AUTHORIZE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub forgejo_authorize_url: Option<String>,
    /// Override of Forgejo's token endpoint [env: FJMCP_FORGEJO_TOKEN_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub forgejo_token_url: Option<String>,
    /// Override of Forgejo's userinfo endpoint [env: FJMCP_FORGEJO_USERINFO_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub forgejo_userinfo_url: Option<String>,
    /// Lifetime of the access tokens the broker issues [env: FJMCP_ACCESS_TOKEN_LIFETIME] [default: 1h]
    #[arg(long, global = true, value_name = "DURATION")]
    pub access_token_lifetime: Option<String>,
    /// Lifetime of the refresh tokens the broker issues [env: FJMCP_REFRESH_TOKEN_LIFETIME] [default: 30d]
    #[arg(long, global = true, value_name = "DURATION")]
    pub refresh_token_lifetime: Option<String>,
    /// How long a used refresh token still works (concurrent refreshes) before reuse revokes the grant [env: FJMCP_REFRESH_REUSE_GRACE] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub refresh_reuse_grace: Option<String>,
    /// TEST ONLY: fetch client ID metadata documents over plain http from loopback hosts [env: FJMCP_CLIENT_METADATA_ALLOW_LOOPBACK_HTTP] [default: false]
    #[arg(long, global = true, value_name = "BOOL")]
    pub client_metadata_allow_loopback_http: Option<String>,
    /// Child command, split like a shell would but never run through one [env: FJMCP_CHILD_COMMAND] [default: forgejo-mcp --transport stdio]
    #[arg(long, global = true, value_name = "COMMAND")]
    pub child_command: Option<String>,
    /// Comma-separated names of broker environment variables children inherit (never FORGEJO_* or FJMCP_*; HOME and TMPDIR are each child's own) [env: FJMCP_CHILD_ENV] [default: PATH,LANG,TZ]
    #[arg(long, global = true, value_name = "NAMES")]
    pub child_env: Option<String>,
    /// Stop a user's child after this long unused [env: FJMCP_IDLE_TIMEOUT] [default: 15m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// How often idle children are looked for [env: FJMCP_REAP_INTERVAL] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub reap_interval: Option<String>,
    /// How often live children's Forgejo tokens are checked for expiry [env: FJMCP_ROTATE_INTERVAL] [default: 1m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub rotate_interval: Option<String>,
    /// Refresh a live child's Forgejo token this long before it expires [env: FJMCP_REFRESH_LEAD] [default: 5m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub refresh_lead: Option<String>,
    /// Check a live child's Forgejo token against Forgejo at most this often, so a user who revokes the broker in Forgejo loses access within it [env: FJMCP_FORGEJO_CHECK_INTERVAL] [default: 5m]
    #[arg(long, global = true, value_name = "DURATION")]
    pub forgejo_check_interval: Option<String>,
    /// Most children alive at once [env: FJMCP_MAX_CHILDREN] [default: 200]
    #[arg(long, global = true, value_name = "N")]
    pub max_children: Option<String>,
    /// Most requests in flight on one child [env: FJMCP_MAX_IN_FLIGHT_PER_CHILD] [default: 32]
    #[arg(long, global = true, value_name = "N")]
    pub max_in_flight_per_child: Option<String>,
    /// Address-space limit of each child, e.g. 2GiB, or `unlimited` [env: FJMCP_CHILD_LIMIT_ADDRESS_SPACE] [default: 8GiB]
    #[arg(long, global = true, value_name = "SIZE")]
    pub child_limit_address_space: Option<String>,
    /// Open-files limit of each child, or `unlimited` [env: FJMCP_CHILD_LIMIT_OPEN_FILES] [default: 1024]
    #[arg(long, global = true, value_name = "N")]
    pub child_limit_open_files: Option<String>,
    /// CPU-time limit of each child, e.g. 1h [env: FJMCP_CHILD_LIMIT_CPU]
    #[arg(long, global = true, value_name = "DURATION")]
    pub child_limit_cpu: Option<String>,
    /// A 2025-era MCP session unused this long ends [env: FJMCP_SESSION_IDLE_TIMEOUT] [default: 24h]
    #[arg(long, global = true, value_name = "DURATION")]
    pub session_idle_timeout: Option<String>,
    /// Most live 2025-era MCP sessions per user [env: FJMCP_MAX_SESSIONS_PER_USER] [default: 100]
    #[arg(long, global = true, value_name = "N")]
    pub max_sessions_per_user: Option<String>,
    /// Comma-separated browser origins allowed on /mcp besides the public URL's [env: FJMCP_ALLOWED_ORIGINS]
    #[arg(long, global = true, value_name = "ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Comma-separated Host header values accepted besides the public URL's [env: FJMCP_ALLOWED_HOSTS]
    #[arg(long, global = true, value_name = "HOSTS")]
    pub allowed_hosts: Option<String>,
    /// json or text [env: FJMCP_LOG_FORMAT] [default: json]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or fjmcp_broker=debug [env: FJMCP_LOG_LEVEL] [default: info]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Largest request body [env: FJMCP_MAX_BODY_SIZE] [default: 1MiB]
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_body_size: Option<String>,
    /// Longest time a request may take [env: FJMCP_REQUEST_TIMEOUT] [default: 300s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// How long in-flight requests may finish after SIGTERM [env: FJMCP_SHUTDOWN_GRACE] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    // Hardening (issue 12).
    /// Reverse proxies whose X-Forwarded-For names the client, comma-separated addresses or networks, or `none` [env: FJMCP_TRUSTED_PROXIES] [default: 127.0.0.1,::1]
    #[arg(long, global = true, value_name = "NETWORKS")]
    pub trusted_proxies: Option<String>,
    /// Requests per client IP on each of /oauth/register, /oauth/authorize and /oauth/token, e.g. 120/min, or `off` [env: FJMCP_RATE_LIMIT_PER_IP] [default: 120/min]
    #[arg(long, global = true, value_name = "RATE")]
    pub rate_limit_per_ip: Option<String>,
    /// Requests from everyone together on each of those endpoints, or `off` [env: FJMCP_RATE_LIMIT_GLOBAL] [default: 1200/min]
    #[arg(long, global = true, value_name = "RATE")]
    pub rate_limit_global: Option<String>,
    /// Most open connections; more are answered 503 [env: FJMCP_MAX_CONNECTIONS] [default: 1024]
    #[arg(long, global = true, value_name = "N")]
    pub max_connections: Option<String>,
    /// Time a client has to send a request's headers (also ends idle keep-alive connections) [env: FJMCP_HEADER_READ_TIMEOUT] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub header_read_timeout: Option<String>,
    /// A registered client that never obtained a grant is deleted after this long [env: FJMCP_UNUSED_CLIENT_LIFETIME] [default: 24h]
    #[arg(long, global = true, value_name = "DURATION")]
    pub unused_client_lifetime: Option<String>,
    /// Audit events older than this are deleted [env: FJMCP_AUDIT_RETENTION] [default: 90d]
    #[arg(long, global = true, value_name = "DURATION")]
    pub audit_retention: Option<String>,
    /// Most open long-lived /mcp streams per grant [env: FJMCP_MAX_STREAMS_PER_GRANT] [default: 32]
    #[arg(long, global = true, value_name = "N")]
    pub max_streams_per_grant: Option<String>,
    /// Most open long-lived /mcp streams per user [env: FJMCP_MAX_STREAMS_PER_USER] [default: 64]
    #[arg(long, global = true, value_name = "N")]
    pub max_streams_per_user: Option<String>,
    /// Run children as this user: a name, UID or UID:GID (needs root or CAP_SETUID, CAP_SETGID, CAP_CHOWN) [env: FJMCP_CHILD_USER]
    #[arg(long, global = true, value_name = "USER")]
    pub child_user: Option<String>,
    /// Process (and thread) limit of each child's user, or `unlimited` [env: FJMCP_CHILD_LIMIT_PROCESSES] [default: 8192 with --child-user]
    #[arg(long, global = true, value_name = "N")]
    pub child_limit_processes: Option<String>,
    /// Directory in which the broker makes its private directory for children [env: FJMCP_CHILD_WORK_DIR] [default: $RUNTIME_DIRECTORY, else $TMPDIR, else /tmp]
    #[arg(long, global = true, value_name = "DIR")]
    pub child_work_dir: Option<String>,
    /// Allow an http:// Forgejo URL on another host (tokens and the client secret travel unencrypted) [env: FJMCP_FORGEJO_ALLOW_HTTP] [default: false]
    #[arg(long, global = true, value_name = "BOOL")]
    pub forgejo_allow_http: Option<String>,
}

impl SettingFlags {
    /// The flags that were given, paired with their settings.
    pub fn given(&self) -> Vec<(Setting, String)> {
        use settings::*;
        [
            (PUBLIC_URL, &self.public_url),
            (LISTEN, &self.listen),
            (METRICS_LISTEN, &self.metrics_listen),
            (STORE, &self.store),
            (SEALING_KEY_FILE, &self.sealing_key_file),
            (SEALING_PREVIOUS_KEY_FILES, &self.sealing_previous_key_files),
            (FORGEJO_URL, &self.forgejo_url),
            (FORGEJO_CLIENT_ID, &self.forgejo_client_id),
            (FORGEJO_CLIENT_SECRET, &self.forgejo_client_secret),
            (FORGEJO_CLIENT_SECRET_FILE, &self.forgejo_client_secret_file),
            (FORGEJO_SCOPES, &self.forgejo_scopes),
            (FORGEJO_AUTHORIZE_URL, &self.forgejo_authorize_url),
            (FORGEJO_TOKEN_URL, &self.forgejo_token_url),
            (FORGEJO_USERINFO_URL, &self.forgejo_userinfo_url),
            (ACCESS_TOKEN_LIFETIME, &self.access_token_lifetime),
            (REFRESH_TOKEN_LIFETIME, &self.refresh_token_lifetime),
            (REFRESH_REUSE_GRACE, &self.refresh_reuse_grace),
            (
                CLIENT_METADATA_ALLOW_LOOPBACK_HTTP,
                &self.client_metadata_allow_loopback_http,
            ),
            (CHILD_COMMAND, &self.child_command),
            (CHILD_ENV, &self.child_env),
            (IDLE_TIMEOUT, &self.idle_timeout),
            (REAP_INTERVAL, &self.reap_interval),
            (ROTATE_INTERVAL, &self.rotate_interval),
            (REFRESH_LEAD, &self.refresh_lead),
            (FORGEJO_CHECK_INTERVAL, &self.forgejo_check_interval),
            (MAX_CHILDREN, &self.max_children),
            (MAX_IN_FLIGHT_PER_CHILD, &self.max_in_flight_per_child),
            (CHILD_LIMIT_ADDRESS_SPACE, &self.child_limit_address_space),
            (CHILD_LIMIT_OPEN_FILES, &self.child_limit_open_files),
            (CHILD_LIMIT_CPU, &self.child_limit_cpu),
            (SESSION_IDLE_TIMEOUT, &self.session_idle_timeout),
            (MAX_SESSIONS_PER_USER, &self.max_sessions_per_user),
            (ALLOWED_ORIGINS, &self.allowed_origins),
            (ALLOWED_HOSTS, &self.allowed_hosts),
            (LOG_FORMAT, &self.log_format),
            (LOG_LEVEL, &self.log_level),
            (MAX_BODY_SIZE, &self.max_body_size),
            (REQUEST_TIMEOUT, &self.request_timeout),
            (SHUTDOWN_GRACE, &self.shutdown_grace),
            (TRUSTED_PROXIES, &self.trusted_proxies),
            (RATE_LIMIT_PER_IP, &self.rate_limit_per_ip),
            (RATE_LIMIT_GLOBAL, &self.rate_limit_global),
            (MAX_CONNECTIONS, &self.max_connections),
            (HEADER_READ_TIMEOUT, &self.header_read_timeout),
            (UNUSED_CLIENT_LIFETIME, &self.unused_client_lifetime),
            (AUDIT_RETENTION, &self.audit_retention),
            (MAX_STREAMS_PER_GRANT, &self.max_streams_per_grant),
            (MAX_STREAMS_PER_USER, &self.max_streams_per_user),
            (CHILD_USER, &self.child_user),
            (CHILD_LIMIT_PROCESSES, &self.child_limit_processes),
            (CHILD_WORK_DIR, &self.child_work_dir),
            (FORGEJO_ALLOW_HTTP, &self.forgejo_allow_http),
        ]
        .into_iter()
        .filter_map(|(setting, value)| value.clone().map(|v| (setting, v)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_a_flag_of_the_same_name() {
        use clap::CommandFactory;
        let command = Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        for setting in settings::ALL {
            let long = setting.flag.trim_start_matches("--");
            assert!(
                serve.get_arguments().any(|a| a.get_long() == Some(long)),
                "no flag {}",
                setting.flag
            );
            let help = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .and_then(|a| a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains(setting.env),
                "help of {} lacks {}",
                setting.flag,
                setting.env
            );
        }
        let parsed =
            Cli::try_parse_from(["fjmcp-broker", "serve", "--listen", "127.0.0.1:1"]).unwrap();
        assert_eq!(
            parsed.command.flags().given(),
            vec![(settings::LISTEN, "127.0.0.1:1".to_string())]
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn admin_takes_the_setting_flags_before_or_after_its_subcommands() {
        for args in [
            &[
                "fjmcp-broker",
                "admin",
                "--store",
                "sqlite:/x.db",
                "users",
                "list",
            ][..],
            &[
                "fjmcp-broker",
                "admin",
                "users",
                "list",
                "--store",
                "sqlite:/x.db",
            ][..],
        ] {
            let parsed = Cli::try_parse_from(args).unwrap();
            assert_eq!(
                parsed.command.flags().given(),
                vec![(settings::STORE, "sqlite:/x.db".to_string())],
                "{args:?}"
            );
        }
        let parsed =
            Cli::try_parse_from(["fjmcp-broker", "admin", "grants", "list", "--json"]).unwrap();
        assert!(matches!(
            parsed.command,
            Command::Admin(AdminArgs { json: true, .. })
        ));
    }

    #[test]
    fn every_setting_flag_is_global_so_admin_subcommands_take_it() {
        use clap::CommandFactory;
        let command = Cli::command();
        let admin = command.find_subcommand("admin").unwrap();
        for setting in settings::ALL {
            let long = setting.flag.trim_start_matches("--");
            let arg = admin
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("admin lacks {}", setting.flag));
            assert!(arg.is_global_set(), "{} is not global", setting.flag);
        }
    }

    #[test]
    fn grants_revoke_takes_exactly_one_target() {
        let revoke = |extra: &[&str]| {
            let mut args = vec!["fjmcp-broker", "admin", "grants", "revoke"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        assert!(revoke(&[]).is_err());
        assert!(revoke(&["--user", "alice", "--client", "c"]).is_err());
        let Command::Admin(AdminArgs {
            command:
                AdminCommand::Grants {
                    action: GrantsAction::Revoke(target),
                },
            ..
        }) = revoke(&["--client", "c"]).unwrap().command
        else {
            panic!("not a revocation");
        };
        assert_eq!(target.client.as_deref(), Some("c"));
        assert_eq!((target.user, target.grant), (None, None));
    }
}
