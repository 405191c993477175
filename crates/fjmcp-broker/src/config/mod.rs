//! Configuration: flags > environment > TOML file > defaults, validated as a whole.
//!
//! Every problem is collected and reported together (an operator fixing a
//! deployment should not have to restart once per typo), and nothing here binds a
//! port or opens the store. Invariant: only this module reads the process
//! environment for settings, through [`Environment`], so tests inject a map.

mod hardening;
pub(crate) mod settings;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

#[cfg(test)]
pub(crate) use hardening::parse_trusted_proxies;
pub use hardening::{IpNet, Rate, UnixUser};
pub(crate) use settings::Setting;
pub(crate) use units::{parse_duration, parse_size};

use crate::crypto::SealingKey;

/// Where the broker's settings come from besides flags and the file.
pub trait Environment {
    /// The value of an environment variable, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    // The one place the process environment is read.
    #[allow(clippy::disallowed_methods)]
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// The TOML file to read: the `--config` flag, else `FJMCP_CONFIG`.
pub fn config_file(flag: Option<PathBuf>, env: &dyn Environment) -> Option<PathBuf> {
    flag.or_else(|| env.var(settings::CONFIG_FILE_ENV).map(PathBuf::from))
}

impl Environment for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Which layer a setting's effective value came from, for messages and `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Default,
    File(PathBuf),
    Environment(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Environment(name) => write!(f, "environment {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The raw text of every setting that has a value, with its origin.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layers {
    /// Stacks defaults, the TOML file (if any), the environment and the flags.
    /// Problems reading the file are pushed onto `problems`; the other layers are
    /// still applied so that every mistake is reported in one go.
    pub(crate) fn collect(
        flags: &[(Setting, String)],
        config_file: Option<&Path>,
        env: &dyn Environment,
        problems: &mut Vec<String>,
    ) -> Layers {
        let mut layers = Layers::default();
        for setting in settings::ALL {
            if let Some(value) = settings::default_for(*setting) {
                layers.set(*setting, value.to_string(), Origin::Default);
            }
        }
        if let Some(path) = config_file {
            layers.apply_file(path, problems);
        }
        for setting in settings::ALL {
            if let Some(value) = env.var(setting.env) {
                layers.set(*setting, value, Origin::Environment(setting.env));
            }
        }
        for (setting, value) in flags {
            layers.set(*setting, value.clone(), Origin::Flag(setting.flag));
        }
        layers
    }

    fn set(&mut self, setting: Setting, value: String, origin: Origin) {
        self.values.insert(setting.key, (value, origin));
    }

    fn get(&self, setting: Setting) -> Option<&(String, Origin)> {
        self.values.get(setting.key)
    }

    fn apply_file(&mut self, path: &Path, problems: &mut Vec<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("config file {}: {e}", path.display()));
                return;
            }
        };
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                problems.push(format!("config file {}: {e}", path.display()));
                return;
            }
        };
        for (key, value) in table {
            let Some(setting) = settings::ALL.iter().find(|s| s.key == key) else {
                problems.push(format!(
                    "config file {}: unknown setting `{key}`",
                    path.display()
                ));
                continue;
            };
            let text = match (&value, setting.key) {
                (toml::Value::String(s), _) => s.clone(),
                (toml::Value::Integer(i), _) => i.to_string(),
                (
                    toml::Value::Array(items),
                    "child_command" | "child_env" | "sealing_previous_key_files",
                ) => {
                    let words: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                    match words {
                        Some(words) if setting.key == "child_command" => shell_words::join(words),
                        Some(words) => words.join(","),
                        None => {
                            problems.push(format!(
                                "config file {}: `{key}` must be a list of strings",
                                path.display()
                            ));
                            continue;
                        }
                    }
                }
                _ => {
                    problems.push(format!(
                        "config file {}: `{key}` must be a string",
                        path.display()
                    ));
                    continue;
                }
            };
            self.set(*setting, text, Origin::File(path.to_path_buf()));
        }
    }
}

/// The broker's public base URL: issuer of its tokens and base of every URL it
/// hands out. Stored without a trailing slash, exactly as the issuer is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String, Url);

impl PublicUrl {
    /// Parses and checks a public URL (see [`parse_public_url`]).
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        parse_public_url(text)
    }

    /// The URL, parsed (checked once, at start).
    pub fn url(&self) -> &Url {
        &self.1
    }

    /// The URL as a string, e.g. `https://mcp.example.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<public-url><path>`; `path` starts with `/`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The origin (`scheme://host[:port]`), which browsers send in `Origin`.
    pub fn origin(&self) -> &str {
        &self.0
    }
}

/// Where the broker accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Bind this address.
    Address(SocketAddr),
    /// Accept on the listening socket passed as standard input, bound by
    /// whoever started the broker: systemd socket activation
    /// (`StandardInput=socket`), or a test that bound port 0 itself.
    Stdin,
}

/// Where persistent state lives.
#[derive(Clone)]
pub enum StoreLocation {
    /// A SQLite database file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (may hold a password).
    Postgres(SecretString),
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            StoreLocation::Postgres(url) => {
                write!(f, "Postgres({})", redact_url_password(url.expose_secret()))
            }
        }
    }
}

/// Where the sealing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingKeyFile {
    /// Path of the key file.
    pub path: PathBuf,
    /// True when the broker may create the file on first start (SQLite default only).
    pub generate_if_missing: bool,
    /// Retired key files whose values the broker can still open (never seals
    /// with), while `admin seal-key rotate` re-seals everything under the
    /// current key.
    pub previous: Vec<PathBuf>,
}

/// The broker's own registration at Forgejo.
#[derive(Debug, Clone)]
pub struct ForgejoSettings {
    /// Base URL of the Forgejo instance, without a trailing slash.
    pub url: String,
    /// Client id of the broker's OAuth2 application in Forgejo.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: SecretString,
    /// Scopes requested from Forgejo; kept stable because Forgejo refuses a new
    /// authorization whose scopes differ from the existing grant's.
    pub scopes: String,
    /// Endpoints that override Forgejo's OpenID discovery document, one by one.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
}

/// Lifetimes and policies of the tokens the broker issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// How long a used refresh token may be presented again (concurrent refreshes).
    pub refresh_reuse_grace: Duration,
    /// TEST ONLY: fetch client ID metadata documents over http from loopback hosts.
    pub client_metadata_allow_loopback_http: bool,
    /// A registered client that never obtained a grant is deleted this long
    /// after its registration (anonymous registrations must not pile up).
    pub unused_client_lifetime: Duration,
    /// Audit events older than this are deleted.
    pub audit_retention: Duration,
}

/// How children are started, kept and limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSettings {
    /// Program and arguments, split like a shell would, never run through one.
    pub command: Vec<String>,
    /// Names of broker environment variables passed through to children.
    pub env_allow_list: Vec<String>,
    /// Their values, read once at start (only `config` reads the environment).
    pub inherited_env: Vec<(String, String)>,
    /// A child unused this long is stopped.
    pub idle_timeout: Duration,
    /// How often idle children are looked for.
    pub reap_interval: Duration,
    /// How often Forgejo tokens of users with a live child are checked for expiry.
    pub rotate_interval: Duration,
    /// Refresh a live child's Forgejo token this long before it expires.
    pub refresh_lead: Duration,
    /// Check a live child's Forgejo token against Forgejo at most this often.
    pub forgejo_check_interval: Duration,
    /// Most children alive at once (one per user).
    pub max_children: usize,
    /// Most requests in flight on one child.
    pub max_in_flight_per_child: usize,
    /// Each child gets a private directory below this one. It does not exist
    /// yet: its name is random (below `child_work_dir`, `$RUNTIME_DIRECTORY`,
    /// `$TMPDIR` or `/tmp`) and the broker creates it exclusively at start,
    /// owned by itself and private (`children::create_work_root`).
    pub work_root: PathBuf,
    /// Optional resource limits for each child.
    pub limit_address_space_bytes: Option<u64>,
    pub limit_open_files: Option<u64>,
    pub limit_cpu_seconds: Option<u64>,
    /// `RLIMIT_NPROC`: counts every process and thread of the child's user.
    pub limit_processes: Option<u64>,
    /// Run children as this user instead of the broker's (needs root or
    /// CAP_SETUID, CAP_SETGID and CAP_CHOWN), so a child cannot read the
    /// broker's memory, environment, store or sealing key.
    pub run_as: Option<UnixUser>,
}

/// The MCP endpoint's sessions and request screening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSettings {
    /// A 2025-era session unused this long ends.
    pub session_idle_timeout: Duration,
    /// Most live 2025-era sessions per user.
    pub max_sessions_per_user: usize,
    /// Browser origins allowed besides the public URL's own (`Origin` header).
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides the public URL's own (e.g. behind a proxy
    /// that rewrites it). Guards against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Most long-lived streams (standalone `GET /mcp`, `subscriptions/listen`)
    /// open at once for one grant, and for one user.
    pub max_streams_per_grant: usize,
    pub max_streams_per_user: usize,
}

/// Log output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for collectors.
    Json,
    /// Human-readable lines.
    Text,
}

/// HTTP server limits and timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest time a non-streaming request may take.
    pub request_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Most connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// A client must send a request's headers within this long (it also ends
    /// idle keep-alive connections), so slow clients cannot hold connections.
    pub header_read_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Requests per client IP, and for everyone together, on each of
    /// `/oauth/register`, `/oauth/authorize` and `/oauth/token`; `None` is off.
    pub rate_limit_per_ip: Option<Rate>,
    pub rate_limit_global: Option<Rate>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: PublicUrl,
    pub listen: Listen,
    /// Where `/metrics` is served; `None`: not at all (never on `listen`).
    pub metrics_listen: Option<SocketAddr>,
    pub store: StoreLocation,
    pub sealing_key: SealingKeyFile,
    pub forgejo: ForgejoSettings,
    pub oauth: OAuthSettings,
    pub children: ChildSettings,
    pub mcp: McpSettings,
    pub log_format: LogFormat,
    /// A `tracing` filter directive such as `info` or `fjmcp_broker=debug,info`.
    pub log_level: String,
    pub http: HttpSettings,
}

/// Every problem found in a configuration.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problems):", self.0.len())?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads the layers and validates them into a [`Config`].
pub fn load(
    flags: &[(Setting, String)],
    config_file: Option<&Path>,
    env: &dyn Environment,
) -> Result<(Config, Layers), ConfigErrors> {
    let mut problems = Vec::new();
    let layers = Layers::collect(flags, config_file, env, &mut problems);
    let config = Validator {
        layers: &layers,
        problems: &mut problems,
        env,
    }
    .validate();
    match config {
        Some(config) if problems.is_empty() => Ok((config, layers)),
        _ => Err(ConfigErrors(problems)),
    }
}

struct Validator<'a> {
    layers: &'a Layers,
    problems: &'a mut Vec<String>,
    /// For the values of the child environment allow-list.
    env: &'a dyn Environment,
}

impl Validator<'_> {
    /// Parses one setting; a missing required one or a parse error is recorded.
    fn parse<T>(
        &mut self,
        setting: Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (text, origin) = self.layers.get(setting)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(why) => {
                self.problems
                    .push(format!("{} (from {origin}): {why}", setting.key));
                None
            }
        }
    }

    fn required<T>(
        &mut self,
        setting: Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.layers.get(setting).is_none() {
            self.problems.push(format!(
                "{} is required: set {} or {}",
                setting.key, setting.flag, setting.env
            ));
            return None;
        }
        self.parse(setting, parse)
    }

    fn validate(mut self) -> Option<Config> {
        use settings::*;
        let public_url = self.required(PUBLIC_URL, parse_public_url);
        let listen = self.parse(LISTEN, |s| match s.trim() {
            "stdin" => Ok(Listen::Stdin),
            s => s
                .parse::<SocketAddr>()
                .map(Listen::Address)
                .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8080 (or `stdin`)")),
        });
        let metrics_listen = self.optional(METRICS_LISTEN, |s| {
            s.trim()
                .parse::<SocketAddr>()
                .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:9090"))
        });
        let store = self.parse(STORE, parse_store);
        let forgejo_url = self.required(FORGEJO_URL, parse_forgejo_url);
        let client_id = self.required(FORGEJO_CLIENT_ID, |s| non_empty(s).map(str::to_string));
        let client_secret = self.client_secret();
        let command = self.parse(CHILD_COMMAND, parse_command);
        let env_allow_list = self.parse(CHILD_ENV, parse_env_names);
        let session_idle_timeout = self.parse(SESSION_IDLE_TIMEOUT, positive_duration);
        let max_sessions = self.parse(MAX_SESSIONS_PER_USER, positive_count);
        let allowed_origins = self.optional(ALLOWED_ORIGINS, parse_origins);
        let allowed_hosts = self.optional(ALLOWED_HOSTS, |s| Ok(comma_list(s)));
        let idle_timeout = self.parse(IDLE_TIMEOUT, positive_duration);
        let reap_interval = self.parse(REAP_INTERVAL, positive_duration);
        let rotate_interval = self.parse(ROTATE_INTERVAL, positive_duration);
        let refresh_lead = self.parse(REFRESH_LEAD, parse_duration);
        let forgejo_check_interval = self.parse(FORGEJO_CHECK_INTERVAL, positive_duration);
        let max_children = self.parse(MAX_CHILDREN, positive_count);
        let max_in_flight = self.parse(MAX_IN_FLIGHT_PER_CHILD, positive_count);
        let limit_as = self
            .optional(CHILD_LIMIT_ADDRESS_SPACE, |s| unlimited_or(s, parse_size))
            .map(Option::flatten);
        let limit_files = self
            .optional(CHILD_LIMIT_OPEN_FILES, |s| {
                unlimited_or(s, |s| positive_count(s).map(|n| n as u64))
            })
            .map(Option::flatten);
        let limit_cpu = self
            .optional(CHILD_LIMIT_CPU, |s| {
                unlimited_or(s, |s| positive_duration(s).map(|d| d.as_secs().max(1)))
            })
            .map(Option::flatten);
        let run_as = self.optional(CHILD_USER, |s| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok();
            hardening::parse_child_user(s, passwd.as_deref())
        });
        // RLIMIT_NPROC counts every process and thread of the child's user: a
        // default only makes sense when that user is the children's own.
        let limit_processes = match (self.layers.get(CHILD_LIMIT_PROCESSES), &run_as) {
            (None, Some(Some(_))) => Some(Some(DEFAULT_CHILD_PROCESSES)),
            _ => self
                .optional(CHILD_LIMIT_PROCESSES, |s| {
                    unlimited_or(s, |s| positive_count(s).map(|n| n as u64))
                })
                .map(Option::flatten),
        };
        let work_parent = self.optional(CHILD_WORK_DIR, |s| non_empty(s).map(PathBuf::from));
        let trusted_proxies = self.parse(TRUSTED_PROXIES, hardening::parse_trusted_proxies);
        let rate_limit_per_ip = self.parse(RATE_LIMIT_PER_IP, hardening::parse_rate);
        let rate_limit_global = self.parse(RATE_LIMIT_GLOBAL, hardening::parse_rate);
        let max_connections = self.parse(MAX_CONNECTIONS, positive_count);
        let header_read_timeout = self.parse(HEADER_READ_TIMEOUT, positive_duration);
        let unused_client_lifetime = self.parse(UNUSED_CLIENT_LIFETIME, positive_duration);
        let audit_retention = self.parse(AUDIT_RETENTION, positive_duration);
        let max_streams_per_grant = self.parse(MAX_STREAMS_PER_GRANT, positive_count);
        let max_streams_per_user = self.parse(MAX_STREAMS_PER_USER, positive_count);
        let forgejo_allow_http = self.parse(FORGEJO_ALLOW_HTTP, parse_bool);
        if let (Some(url), Some(allow)) = (&forgejo_url, forgejo_allow_http)
            && let Err(why) = hardening::check_forgejo_scheme(url, allow)
        {
            self.problems.push(format!("forgejo_url: {why}"));
        }
        let log_format = self.parse(LOG_FORMAT, |s| match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("`{other}` is not `json` or `text`")),
        });
        let log_level = self.parse(LOG_LEVEL, |s| {
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_string())
                .map_err(|e| format!("`{s}` is not a log filter: {e}"))
        });
        let max_body_bytes = self.parse(MAX_BODY_SIZE, |s| {
            let size = parse_size(s)?;
            if !(1024..=(64 << 20)).contains(&size) {
                return Err(format!("`{s}` must be between 1KiB and 64MiB"));
            }
            Ok(size as usize)
        });
        let request_timeout = self.parse(REQUEST_TIMEOUT, positive_duration);
        let shutdown_grace = self.parse(SHUTDOWN_GRACE, parse_duration);
        let scopes = self.parse(FORGEJO_SCOPES, |s| non_empty(s).map(str::to_string));
        let authorize_url = self.optional_url(FORGEJO_AUTHORIZE_URL);
        let token_url = self.optional_url(FORGEJO_TOKEN_URL);
        let userinfo_url = self.optional_url(FORGEJO_USERINFO_URL);
        let access_token_lifetime = self.parse(ACCESS_TOKEN_LIFETIME, positive_duration);
        let refresh_token_lifetime = self.parse(REFRESH_TOKEN_LIFETIME, positive_duration);
        let refresh_reuse_grace = self.parse(REFRESH_REUSE_GRACE, parse_duration);
        let allow_loopback_http = self.parse(CLIENT_METADATA_ALLOW_LOOPBACK_HTTP, parse_bool);
        let sealing_key = store
            .as_ref()
            .and_then(|store| self.sealing_key_file(store));

        Some(Config {
            public_url: public_url?,
            listen: listen?,
            metrics_listen: metrics_listen?,
            store: store?,
            sealing_key: sealing_key?,
            forgejo: ForgejoSettings {
                url: forgejo_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                scopes: scopes?,
                authorize_url: authorize_url?,
                token_url: token_url?,
                userinfo_url: userinfo_url?,
            },
            oauth: OAuthSettings {
                access_token_lifetime: access_token_lifetime?,
                refresh_token_lifetime: refresh_token_lifetime?,
                refresh_reuse_grace: refresh_reuse_grace?,
                client_metadata_allow_loopback_http: allow_loopback_http?,
                unused_client_lifetime: unused_client_lifetime?,
                audit_retention: audit_retention?,
            },
            children: ChildSettings {
                command: command?,
                inherited_env: env_allow_list
                    .iter()
                    .flatten()
                    .filter_map(|name| self.env.var(name).map(|value| (name.clone(), value)))
                    .collect(),
                env_allow_list: env_allow_list?,
                work_root: hardening::work_root_in(&hardening::work_parent(
                    work_parent?,
                    self.env.var("RUNTIME_DIRECTORY"),
                    self.env.var("TMPDIR"),
                )),
                idle_timeout: idle_timeout?,
                reap_interval: reap_interval?,
                rotate_interval: rotate_interval?,
                refresh_lead: refresh_lead?,
                forgejo_check_interval: forgejo_check_interval?,
                max_children: max_children?,
                max_in_flight_per_child: max_in_flight?,
                limit_address_space_bytes: limit_as?,
                limit_open_files: limit_files?,
                limit_cpu_seconds: limit_cpu?,
                limit_processes: limit_processes?,
                run_as: run_as?,
            },
            mcp: McpSettings {
                session_idle_timeout: session_idle_timeout?,
                max_sessions_per_user: max_sessions?,
                allowed_origins: allowed_origins?.unwrap_or_default(),
                allowed_hosts: allowed_hosts?.unwrap_or_default(),
                max_streams_per_grant: max_streams_per_grant?,
                max_streams_per_user: max_streams_per_user?,
            },
            log_format: log_format?,
            log_level: log_level?,
            http: HttpSettings {
                max_body_bytes: max_body_bytes?,
                request_timeout: request_timeout?,
                shutdown_grace: shutdown_grace?,
                max_connections: max_connections?,
                header_read_timeout: header_read_timeout?,
                trusted_proxies: trusted_proxies?,
                rate_limit_per_ip: rate_limit_per_ip?,
                rate_limit_global: rate_limit_global?,
            },
        })
    }

    /// An optional setting: `Some(None)` when unset, `None` when invalid.
    fn optional<T>(
        &mut self,
        setting: Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        if self.layers.get(setting).is_none() {
            return Some(None);
        }
        self.parse(setting, parse).map(Some)
    }

    fn optional_url(&mut self, setting: Setting) -> Option<Option<String>> {
        self.optional(setting, parse_forgejo_url)
    }

    fn client_secret(&mut self) -> Option<SecretString> {
        use settings::{FORGEJO_CLIENT_SECRET, FORGEJO_CLIENT_SECRET_FILE};
        match (
            self.layers.get(FORGEJO_CLIENT_SECRET),
            self.layers.get(FORGEJO_CLIENT_SECRET_FILE),
        ) {
            (Some(_), Some(_)) => {
                self.problems.push(format!(
                    "set only one of {} and {}",
                    FORGEJO_CLIENT_SECRET.flag, FORGEJO_CLIENT_SECRET_FILE.flag
                ));
                None
            }
            (None, None) => {
                self.problems.push(format!(
                    "forgejo_client_secret is required: set {} / {} or {} / {}",
                    FORGEJO_CLIENT_SECRET.flag,
                    FORGEJO_CLIENT_SECRET.env,
                    FORGEJO_CLIENT_SECRET_FILE.flag,
                    FORGEJO_CLIENT_SECRET_FILE.env
                ));
                None
            }
            (Some(_), None) => self.parse(FORGEJO_CLIENT_SECRET, |s| {
                non_empty(s).map(|s| SecretString::from(s.to_string()))
            }),
            (None, Some(_)) => self.parse(FORGEJO_CLIENT_SECRET_FILE, |path| {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read `{path}`: {e}"))?;
                let secret = text.trim();
                if secret.is_empty() {
                    return Err(format!("`{path}` is empty"));
                }
                Ok(SecretString::from(secret.to_string()))
            }),
        }
    }

    fn sealing_key_file(&mut self, store: &StoreLocation) -> Option<SealingKeyFile> {
        let explicit = self.parse(settings::SEALING_KEY_FILE, |s| {
            non_empty(s).map(PathBuf::from)
        });
        let key_file = match (explicit, store) {
            (Some(path), _) => SealingKeyFile {
                path,
                generate_if_missing: false,
                previous: Vec::new(),
            },
            (None, StoreLocation::Sqlite(db)) => SealingKeyFile {
                path: default_key_path(db),
                generate_if_missing: true,
                previous: Vec::new(),
            },
            (None, StoreLocation::Postgres(_)) => {
                if self.layers.get(settings::SEALING_KEY_FILE).is_none() {
                    self.problems.push(format!(
                        "sealing_key_file is required with a PostgreSQL store (every instance must share the key): set {} or {}",
                        settings::SEALING_KEY_FILE.flag,
                        settings::SEALING_KEY_FILE.env
                    ));
                }
                return None;
            }
        };
        // Check an existing or required key file now, so a bad one is reported with
        // every other problem instead of after the store has been opened.
        if (key_file.path.exists() || !key_file.generate_if_missing)
            && let Err(e) = SealingKey::load(&key_file.path)
        {
            self.problems.push(e.to_string());
            return None;
        }
        // Retired keys must be readable now too: a rotation relies on them.
        let previous = self.optional(settings::SEALING_PREVIOUS_KEY_FILES, |s| {
            let paths: Vec<PathBuf> = comma_list(s).into_iter().map(PathBuf::from).collect();
            let problems: Vec<String> = paths
                .iter()
                .filter_map(|path| SealingKey::load(path).err().map(|e| e.to_string()))
                .collect();
            if problems.is_empty() {
                Ok(paths)
            } else {
                Err(problems.join("; "))
            }
        })?;
        Some(SealingKeyFile {
            previous: previous.unwrap_or_default(),
            ..key_file
        })
    }
}

fn non_empty(s: &str) -> Result<&str, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s)
    }
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// `https://app.example.com,http://localhost:6274`: each a bare origin.
fn parse_origins(s: &str) -> Result<Vec<String>, String> {
    comma_list(s)
        .into_iter()
        .map(|origin| {
            let url = Url::parse(&origin).map_err(|_| format!("`{origin}` is not an origin"))?;
            let bare = url.origin().ascii_serialization();
            if bare == "null" || origin.trim_end_matches('/') != bare {
                return Err(format!(
                    "`{origin}` is not a bare origin like https://app.example.com"
                ));
            }
            Ok(bare)
        })
        .collect()
}

/// `RLIMIT_NPROC` of each child when children run as their own user and no
/// limit is configured: room for every child's threads, none for a fork bomb.
const DEFAULT_CHILD_PROCESSES: u64 = 8192;

/// `unlimited` (no limit: `None`), or what `parse` makes of the text.
fn unlimited_or<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if s.trim().eq_ignore_ascii_case("unlimited") {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number above zero")),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub(crate) fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

fn parse_public_url(s: &str) -> Result<PublicUrl, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    let host = url.host().ok_or_else(|| format!("`{s}` has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => {
            return Err(format!(
                "`{s}` must use https (http is allowed only for localhost, 127.0.0.1 or [::1])"
            ));
        }
        other => return Err(format!("`{s}`: scheme `{other}` is not https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{s}` must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must not have a query or fragment"));
    }
    if url.path() != "/" {
        return Err(format!(
            "`{s}` must not have a path: serve the broker at the root of its own host name"
        ));
    }
    let text = url.as_str().trim_end_matches('/').to_string();
    Ok(PublicUrl(text, url))
}

fn parse_forgejo_url(s: &str) -> Result<String, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{s}` must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn parse_store(s: &str) -> Result<StoreLocation, String> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() || path.contains('?') {
            return Err(format!(
                "`{s}`: write sqlite:<path to the database file>, e.g. sqlite:/var/lib/fjmcp/broker.db"
            ));
        }
        return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Url::parse(s).map_err(|e| format!("`{}` is not a URL: {e}", redact_url_password(s)))?;
        return Ok(StoreLocation::Postgres(SecretString::from(s.to_string())));
    }
    Err(format!(
        "`{}` is neither sqlite:<path> nor postgres://…",
        redact_url_password(s)
    ))
}

fn parse_command(s: &str) -> Result<Vec<String>, String> {
    let words = shell_words::split(s).map_err(|e| format!("`{s}`: {e}"))?;
    if words.is_empty() {
        return Err("must name a program".into());
    }
    Ok(words)
}

fn parse_env_names(s: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{name}` is not an environment variable name"));
        }
        if name.starts_with("FORGEJO_") {
            // The broker sets FORGEJO_URL and FORGEJO_ACCESS_TOKEN per child itself.
            return Err(format!(
                "`{name}`: FORGEJO_* variables are set by the broker for each child"
            ));
        }
        if name.starts_with("FJMCP_") {
            // The broker's own settings: its client secret, store URL (with a
            // database password) and the like are never a child's business.
            return Err(format!(
                "`{name}`: FJMCP_* variables are the broker's own settings and never passed to children"
            ));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

fn default_key_path(db: &Path) -> PathBuf {
    let mut name = db
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "fjmcp-broker.db".into());
    name.push(".sealing-key");
    db.with_file_name(name)
}

/// Replaces the password in a URL with `***` so it can be shown.
fn redact_url_password(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => text.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

/// The effective configuration as `key = value  # origin` lines, secrets redacted.
pub fn describe(layers: &Layers) -> String {
    let mut out = String::new();
    for setting in settings::ALL {
        let Some((value, origin)) = layers.get(*setting) else {
            out.push_str(&format!("# {} is not set\n", setting.key));
            continue;
        };
        let shown = if setting.key == "store" {
            redact_url_password(value)
        } else if setting.secret {
            "<redacted>".to_string()
        } else {
            value.clone()
        };
        out.push_str(&format!(
            "{} = {}  # {origin}\n",
            setting.key,
            toml::Value::String(shown)
        ));
    }
    out
}

#[cfg(test)]
mod tests;
