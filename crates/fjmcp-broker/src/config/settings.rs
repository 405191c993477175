//! The table of every setting: its TOML key, flag and environment variable.
//!
//! One row per setting keeps the three spellings from drifting apart; the
//! names are part of the public interface (deployments and other tools use them).

/// One configurable setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Key in the TOML file, and the name used in messages.
    pub key: &'static str,
    /// Command-line flag.
    pub flag: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Whether `check-config` must redact the value.
    pub secret: bool,
}

const fn setting(key: &'static str, flag: &'static str, env: &'static str) -> Setting {
    Setting {
        key,
        flag,
        env,
        secret: false,
    }
}

const fn secret(key: &'static str, flag: &'static str, env: &'static str) -> Setting {
    Setting {
        key,
        flag,
        env,
        secret: true,
    }
}

pub(crate) const PUBLIC_URL: Setting = setting("public_url", "--public-url", "FJMCP_PUBLIC_URL");
pub(crate) const LISTEN: Setting = setting("listen", "--listen", "FJMCP_LISTEN");
pub(crate) const METRICS_LISTEN: Setting =
    setting("metrics_listen", "--metrics-listen", "FJMCP_METRICS_LISTEN");
// The store URL can carry a PostgreSQL password.
pub(crate) const STORE: Setting = secret("store", "--store", "FJMCP_STORE");
pub(crate) const SEALING_KEY_FILE: Setting = setting(
    "sealing_key_file",
    "--sealing-key-file",
    "FJMCP_SEALING_KEY_FILE",
);
pub(crate) const SEALING_PREVIOUS_KEY_FILES: Setting = setting(
    "sealing_previous_key_files",
    "--sealing-previous-key-files",
    "FJMCP_SEALING_PREVIOUS_KEY_FILES",
);
pub(crate) const FORGEJO_URL: Setting =
    setting("forgejo_url", "--forgejo-url", "FJMCP_FORGEJO_URL");
pub(crate) const FORGEJO_CLIENT_ID: Setting = setting(
    "forgejo_client_id",
    "--forgejo-client-id",
    "FJMCP_FORGEJO_CLIENT_ID",
);
pub(crate) const FORGEJO_CLIENT_SECRET: Setting = secret(
    "forgejo_client_secret",
    "--forgejo-client-secret",
    "FJMCP_FORGEJO_CLIENT_SECRET",
);
pub(crate) const FORGEJO_CLIENT_SECRET_FILE: Setting = setting(
    "forgejo_client_secret_file",
    "--forgejo-client-secret-file",
    "FJMCP_FORGEJO_CLIENT_SECRET_FILE",
);
pub(crate) const CHILD_COMMAND: Setting =
    setting("child_command", "--child-command", "FJMCP_CHILD_COMMAND");
pub(crate) const CHILD_ENV: Setting = setting("child_env", "--child-env", "FJMCP_CHILD_ENV");
pub(crate) const LOG_FORMAT: Setting = setting("log_format", "--log-format", "FJMCP_LOG_FORMAT");
pub(crate) const LOG_LEVEL: Setting = setting("log_level", "--log-level", "FJMCP_LOG_LEVEL");
pub(crate) const MAX_BODY_SIZE: Setting =
    setting("max_body_size", "--max-body-size", "FJMCP_MAX_BODY_SIZE");
pub(crate) const REQUEST_TIMEOUT: Setting = setting(
    "request_timeout",
    "--request-timeout",
    "FJMCP_REQUEST_TIMEOUT",
);
pub(crate) const SHUTDOWN_GRACE: Setting =
    setting("shutdown_grace", "--shutdown-grace", "FJMCP_SHUTDOWN_GRACE");

pub(crate) const FORGEJO_SCOPES: Setting =
    setting("forgejo_scopes", "--forgejo-scopes", "FJMCP_FORGEJO_SCOPES");
pub(crate) const FORGEJO_AUTHORIZE_URL: Setting = setting(
    "forgejo_authorize_url",
    "--forgejo-authorize-url",
    "FJMCP_FORGEJO_AUTHORIZE_URL",
);
pub(crate) const FORGEJO_TOKEN_URL: Setting = setting(
    "forgejo_token_url",
    "--forgejo-token-url",
    "FJMCP_FORGEJO_TOKEN_URL",
);
pub(crate) const FORGEJO_USERINFO_URL: Setting = setting(
    "forgejo_userinfo_url",
    "--forgejo-userinfo-url",
    "FJMCP_FORGEJO_USERINFO_URL",
);
pub(crate) const ACCESS_TOKEN_LIFETIME: Setting = setting(
    "access_token_lifetime",
    "--access-token-lifetime",
    "FJMCP_ACCESS_TOKEN_LIFETIME",
);
pub(crate) const REFRESH_TOKEN_LIFETIME: Setting = setting(
    "refresh_token_lifetime",
    "--refresh-token-lifetime",
    "FJMCP_REFRESH_TOKEN_LIFETIME",
);
pub(crate) const REFRESH_REUSE_GRACE: Setting = setting(
    "refresh_reuse_grace",
    "--refresh-reuse-grace",
    "FJMCP_REFRESH_REUSE_GRACE",
);
pub(crate) const CLIENT_METADATA_ALLOW_LOOPBACK_HTTP: Setting = setting(
    "client_metadata_allow_loopback_http",
    "--client-metadata-allow-loopback-http",
    "FJMCP_CLIENT_METADATA_ALLOW_LOOPBACK_HTTP",
);

pub(crate) const IDLE_TIMEOUT: Setting =
    setting("idle_timeout", "--idle-timeout", "FJMCP_IDLE_TIMEOUT");
pub(crate) const REAP_INTERVAL: Setting =
    setting("reap_interval", "--reap-interval", "FJMCP_REAP_INTERVAL");
pub(crate) const ROTATE_INTERVAL: Setting = setting(
    "rotate_interval",
    "--rotate-interval",
    "FJMCP_ROTATE_INTERVAL",
);
pub(crate) const REFRESH_LEAD: Setting =
    setting("refresh_lead", "--refresh-lead", "FJMCP_REFRESH_LEAD");
pub(crate) const FORGEJO_CHECK_INTERVAL: Setting = setting(
    "forgejo_check_interval",
    "--forgejo-check-interval",
    "FJMCP_FORGEJO_CHECK_INTERVAL",
);
pub(crate) const MAX_CHILDREN: Setting =
    setting("max_children", "--max-children", "FJMCP_MAX_CHILDREN");
pub(crate) const MAX_IN_FLIGHT_PER_CHILD: Setting = setting(
    "max_in_flight_per_child",
    "--max-in-flight-per-child",
    "FJMCP_MAX_IN_FLIGHT_PER_CHILD",
);
pub(crate) const CHILD_LIMIT_ADDRESS_SPACE: Setting = setting(
    "child_limit_address_space",
    "--child-limit-address-space",
    "FJMCP_CHILD_LIMIT_ADDRESS_SPACE",
);
pub(crate) const CHILD_LIMIT_OPEN_FILES: Setting = setting(
    "child_limit_open_files",
    "--child-limit-open-files",
    "FJMCP_CHILD_LIMIT_OPEN_FILES",
);
pub(crate) const CHILD_LIMIT_CPU: Setting = setting(
    "child_limit_cpu",
    "--child-limit-cpu",
    "FJMCP_CHILD_LIMIT_CPU",
);

pub(crate) const SESSION_IDLE_TIMEOUT: Setting = setting(
    "session_idle_timeout",
    "--session-idle-timeout",
    "FJMCP_SESSION_IDLE_TIMEOUT",
);
pub(crate) const MAX_SESSIONS_PER_USER: Setting = setting(
    "max_sessions_per_user",
    "--max-sessions-per-user",
    "FJMCP_MAX_SESSIONS_PER_USER",
);
pub(crate) const ALLOWED_ORIGINS: Setting = setting(
    "allowed_origins",
    "--allowed-origins",
    "FJMCP_ALLOWED_ORIGINS",
);
pub(crate) const ALLOWED_HOSTS: Setting =
    setting("allowed_hosts", "--allowed-hosts", "FJMCP_ALLOWED_HOSTS");

// Hardening (issue 12): limits on anonymous endpoints and on the HTTP server,
// retention of what anonymous callers leave behind, caps on open streams, and
// how children are isolated from the broker and from each other.
pub(crate) const TRUSTED_PROXIES: Setting = setting(
    "trusted_proxies",
    "--trusted-proxies",
    "FJMCP_TRUSTED_PROXIES",
);
pub(crate) const RATE_LIMIT_PER_IP: Setting = setting(
    "rate_limit_per_ip",
    "--rate-limit-per-ip",
    "FJMCP_RATE_LIMIT_PER_IP",
);
pub(crate) const RATE_LIMIT_GLOBAL: Setting = setting(
    "rate_limit_global",
    "--rate-limit-global",
    "FJMCP_RATE_LIMIT_GLOBAL",
);
pub(crate) const MAX_CONNECTIONS: Setting = setting(
    "max_connections",
    "--max-connections",
    "FJMCP_MAX_CONNECTIONS",
);
pub(crate) const HEADER_READ_TIMEOUT: Setting = setting(
    "header_read_timeout",
    "--header-read-timeout",
    "FJMCP_HEADER_READ_TIMEOUT",
);
pub(crate) const UNUSED_CLIENT_LIFETIME: Setting = setting(
    "unused_client_lifetime",
    "--unused-client-lifetime",
    "FJMCP_UNUSED_CLIENT_LIFETIME",
);
pub(crate) const AUDIT_RETENTION: Setting = setting(
    "audit_retention",
    "--audit-retention",
    "FJMCP_AUDIT_RETENTION",
);
pub(crate) const MAX_STREAMS_PER_GRANT: Setting = setting(
    "max_streams_per_grant",
    "--max-streams-per-grant",
    "FJMCP_MAX_STREAMS_PER_GRANT",
);
pub(crate) const MAX_STREAMS_PER_USER: Setting = setting(
    "max_streams_per_user",
    "--max-streams-per-user",
    "FJMCP_MAX_STREAMS_PER_USER",
);
pub(crate) const CHILD_USER: Setting = setting("child_user", "--child-user", "FJMCP_CHILD_USER");
pub(crate) const CHILD_LIMIT_PROCESSES: Setting = setting(
    "child_limit_processes",
    "--child-limit-processes",
    "FJMCP_CHILD_LIMIT_PROCESSES",
);
pub(crate) const CHILD_WORK_DIR: Setting =
    setting("child_work_dir", "--child-work-dir", "FJMCP_CHILD_WORK_DIR");
pub(crate) const FORGEJO_ALLOW_HTTP: Setting = setting(
    "forgejo_allow_http",
    "--forgejo-allow-http",
    "FJMCP_FORGEJO_ALLOW_HTTP",
);

/// The TOML file itself is named by flag or environment only.
pub(crate) const CONFIG_FILE_ENV: &str = "FJMCP_CONFIG";

/// Every setting, in the order `check-config` prints them.
pub(crate) const ALL: &[Setting] = &[
    PUBLIC_URL,
    LISTEN,
    METRICS_LISTEN,
    STORE,
    SEALING_KEY_FILE,
    SEALING_PREVIOUS_KEY_FILES,
    FORGEJO_URL,
    FORGEJO_CLIENT_ID,
    FORGEJO_CLIENT_SECRET,
    FORGEJO_CLIENT_SECRET_FILE,
    FORGEJO_SCOPES,
    FORGEJO_AUTHORIZE_URL,
    FORGEJO_TOKEN_URL,
    FORGEJO_USERINFO_URL,
    ACCESS_TOKEN_LIFETIME,
    REFRESH_TOKEN_LIFETIME,
    REFRESH_REUSE_GRACE,
    CLIENT_METADATA_ALLOW_LOOPBACK_HTTP,
    CHILD_COMMAND,
    CHILD_ENV,
    IDLE_TIMEOUT,
    REAP_INTERVAL,
    ROTATE_INTERVAL,
    REFRESH_LEAD,
    FORGEJO_CHECK_INTERVAL,
    MAX_CHILDREN,
    MAX_IN_FLIGHT_PER_CHILD,
    CHILD_LIMIT_ADDRESS_SPACE,
    CHILD_LIMIT_OPEN_FILES,
    CHILD_LIMIT_CPU,
    SESSION_IDLE_TIMEOUT,
    MAX_SESSIONS_PER_USER,
    ALLOWED_ORIGINS,
    ALLOWED_HOSTS,
    LOG_FORMAT,
    LOG_LEVEL,
    MAX_BODY_SIZE,
    REQUEST_TIMEOUT,
    SHUTDOWN_GRACE,
    // Hardening (issue 12).
    TRUSTED_PROXIES,
    RATE_LIMIT_PER_IP,
    RATE_LIMIT_GLOBAL,
    MAX_CONNECTIONS,
    HEADER_READ_TIMEOUT,
    UNUSED_CLIENT_LIFETIME,
    AUDIT_RETENTION,
    MAX_STREAMS_PER_GRANT,
    MAX_STREAMS_PER_USER,
    CHILD_USER,
    CHILD_LIMIT_PROCESSES,
    CHILD_WORK_DIR,
    FORGEJO_ALLOW_HTTP,
];

/// Defaults for settings that have one (the others are required or optional).
pub(crate) fn default_for(setting: Setting) -> Option<&'static str> {
    Some(match setting.key {
        "listen" => "127.0.0.1:8080",
        "store" => "sqlite:fjmcp-broker.db",
        "child_command" => "forgejo-mcp --transport stdio",
        // HOME and TMPDIR are each child's own (children/process.rs), never the broker's.
        "child_env" => "PATH,LANG,TZ",
        "log_format" => "json",
        "log_level" => "info",
        "max_body_size" => "1MiB",
        "request_timeout" => "300s",
        "shutdown_grace" => "10s",
        "forgejo_scopes" => "openid profile",
        "access_token_lifetime" => "1h",
        "refresh_token_lifetime" => "30d",
        "refresh_reuse_grace" => "10s",
        "client_metadata_allow_loopback_http" => "false",
        "idle_timeout" => "15m",
        "reap_interval" => "30s",
        "rotate_interval" => "1m",
        "refresh_lead" => "5m",
        "forgejo_check_interval" => "5m",
        "max_children" => "200",
        "max_in_flight_per_child" => "32",
        "session_idle_timeout" => "24h",
        "max_sessions_per_user" => "100",
        // Hardening (issue 12); the reasons for each default are in README's
        // configuration table and "Security model".
        "child_limit_address_space" => "8GiB",
        "child_limit_open_files" => "1024",
        "trusted_proxies" => "127.0.0.1,::1",
        "rate_limit_per_ip" => "120/min",
        "rate_limit_global" => "1200/min",
        "max_connections" => "1024",
        "header_read_timeout" => "30s",
        "unused_client_lifetime" => "24h",
        "audit_retention" => "90d",
        "max_streams_per_grant" => "32",
        "max_streams_per_user" => "64",
        "forgejo_allow_http" => "false",
        _ => return None,
    })
}
