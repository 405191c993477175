use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn required_env(dir: &Path) -> BTreeMap<String, String> {
    env(&[
        ("FJMCP_PUBLIC_URL", "https://mcp.example.com"),
        ("FJMCP_FORGEJO_URL", "https://forgejo.example.com/"),
        ("FJMCP_FORGEJO_CLIENT_ID", "broker"),
        ("FJMCP_FORGEJO_CLIENT_SECRET", "s3cret"),
        (
            "FJMCP_STORE",
            &format!("sqlite:{}", dir.join("b.db").display()),
        ),
    ])
}

fn problems(result: Result<(Config, Layers), ConfigErrors>) -> Vec<String> {
    match result {
        Ok(_) => panic!("expected the configuration to be refused"),
        Err(ConfigErrors(p)) => p,
    }
}

#[test]
fn defaults_apply_and_required_settings_parse() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = load(&[], None, &required_env(dir.path())).unwrap();
    assert_eq!(config.public_url.as_str(), "https://mcp.example.com");
    assert_eq!(
        config.public_url.join("/mcp"),
        "https://mcp.example.com/mcp"
    );
    assert_eq!(config.forgejo.url, "https://forgejo.example.com");
    assert_eq!(
        config.listen,
        Listen::Address("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(
        config.children.command,
        vec!["forgejo-mcp", "--transport", "stdio"]
    );
    assert_eq!(config.children.env_allow_list, vec!["PATH", "LANG", "TZ"]);
    assert_eq!(config.sealing_key.path, dir.path().join("b.db.sealing-key"));
    assert!(config.sealing_key.generate_if_missing);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.http.max_body_bytes, 1 << 20);
    assert_eq!(config.http.request_timeout, Duration::from_secs(300));
    assert_eq!(config.children.idle_timeout, Duration::from_secs(900));
    assert_eq!(config.children.reap_interval, Duration::from_secs(30));
    assert_eq!(config.children.refresh_lead, Duration::from_secs(300));
    assert_eq!(config.children.limit_open_files, Some(1024));
    assert_eq!(config.children.limit_address_space_bytes, Some(8 << 30));
    assert_eq!(
        config.children.limit_processes, None,
        "not without child_user"
    );
    assert_eq!(config.children.run_as, None);
    assert_eq!(config.http.max_connections, 1024);
    assert_eq!(config.http.header_read_timeout, Duration::from_secs(30));
    assert_eq!(config.http.trusted_proxies.len(), 2);
    assert_eq!(
        config.http.rate_limit_per_ip,
        Some(Rate {
            count: 120,
            per: Duration::from_secs(60)
        })
    );
    assert_eq!(
        config.oauth.unused_client_lifetime,
        Duration::from_secs(86_400)
    );
    assert_eq!(config.mcp.max_streams_per_grant, 32);
}

#[test]
fn hardening_settings_parse_and_limits_can_be_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = required_env(dir.path());
    e.insert("FJMCP_CHILD_USER".into(), "990:985".into());
    e.insert("FJMCP_CHILD_LIMIT_ADDRESS_SPACE".into(), "unlimited".into());
    e.insert("FJMCP_RATE_LIMIT_GLOBAL".into(), "off".into());
    e.insert("FJMCP_TRUSTED_PROXIES".into(), "none".into());
    e.insert("FJMCP_CHILD_WORK_DIR".into(), "/srv/fjmcp".into());
    let (config, _) = load(&[], None, &e).unwrap();
    assert_eq!(
        config.children.run_as,
        Some(UnixUser { uid: 990, gid: 985 })
    );
    assert_eq!(
        config.children.limit_processes,
        Some(8192),
        "default with child_user"
    );
    assert_eq!(config.children.limit_address_space_bytes, None);
    assert_eq!(config.http.rate_limit_global, None);
    assert!(config.http.trusted_proxies.is_empty());
    assert!(config.children.work_root.starts_with("/srv/fjmcp"));

    let mut bad = required_env(dir.path());
    for (name, value) in [
        ("FJMCP_CHILD_USER", "0"),
        ("FJMCP_RATE_LIMIT_PER_IP", "lots"),
        ("FJMCP_TRUSTED_PROXIES", "proxy.local"),
        ("FJMCP_MAX_CONNECTIONS", "0"),
        ("FJMCP_MAX_STREAMS_PER_USER", "x"),
    ] {
        bad.insert(name.into(), value.into());
    }
    let p = problems(load(&[], None, &bad));
    assert_eq!(p.len(), 5, "every problem at once: {p:?}");
}

#[test]
fn the_child_work_root_is_unpredictable_and_follows_the_runtime_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = required_env(dir.path());
    e.insert("RUNTIME_DIRECTORY".into(), "/run/fjmcp-broker".into());
    let (first, _) = load(&[], None, &e).unwrap();
    let (second, _) = load(&[], None, &e).unwrap();
    assert!(first.children.work_root.starts_with("/run/fjmcp-broker"));
    assert_ne!(
        first.children.work_root, second.children.work_root,
        "not derived from the pid: another local user cannot prepare it"
    );
}

#[test]
fn plain_http_to_a_remote_forgejo_needs_an_explicit_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = required_env(dir.path());
    e.insert(
        "FJMCP_FORGEJO_URL".into(),
        "http://forgejo.internal:3000".into(),
    );
    let p = problems(load(&[], None, &e));
    assert!(p[0].contains("forgejo_allow_http"), "{p:?}");
    e.insert("FJMCP_FORGEJO_ALLOW_HTTP".into(), "true".into());
    assert!(load(&[], None, &e).is_ok());
    e.insert("FJMCP_FORGEJO_URL".into(), "http://127.0.0.1:3000".into());
    e.remove("FJMCP_FORGEJO_ALLOW_HTTP");
    assert!(load(&[], None, &e).is_ok(), "loopback http stays allowed");
}

#[test]
fn children_inherit_only_allow_listed_variables_and_limits_parse() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = required_env(dir.path());
    e.insert("PATH".into(), "/usr/bin".into());
    e.insert("HOME".into(), "/home/broker".into());
    e.insert("AWS_SECRET_ACCESS_KEY".into(), "leak".into());
    e.insert("FJMCP_CHILD_ENV".into(), "PATH,HOME,TZ".into());
    e.insert("FJMCP_CHILD_LIMIT_OPEN_FILES".into(), "256".into());
    e.insert("FJMCP_CHILD_LIMIT_ADDRESS_SPACE".into(), "2GiB".into());
    let (config, _) = load(&[], None, &e).unwrap();
    assert_eq!(
        config.children.inherited_env,
        vec![
            ("PATH".to_string(), "/usr/bin".to_string()),
            ("HOME".to_string(), "/home/broker".to_string())
        ]
    );
    assert_eq!(config.children.limit_open_files, Some(256));
    assert_eq!(config.children.limit_address_space_bytes, Some(2 << 30));
    e.insert("FJMCP_MAX_CHILDREN".into(), "0".into());
    let p = problems(load(&[], None, &e));
    assert!(p[0].contains("max_children"), "{p:?}");
}

#[test]
fn every_missing_required_setting_is_named_at_once() {
    let p = problems(load(&[], None, &env(&[])));
    let text = p.join("\n");
    for name in [
        "FJMCP_PUBLIC_URL",
        "FJMCP_FORGEJO_URL",
        "FJMCP_FORGEJO_CLIENT_ID",
        "FJMCP_FORGEJO_CLIENT_SECRET",
    ] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    assert_eq!(p.len(), 4, "{text}");
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(
        &file,
        r#"
listen = "127.0.0.1:9000"
log_format = "text"
request_timeout = "20s"
child_command = ["fixture-child", "--flag with space"]
"#,
    )
    .unwrap();
    let mut e = required_env(dir.path());
    e.insert("FJMCP_LISTEN".into(), "127.0.0.1:9001".into());
    e.insert("FJMCP_REQUEST_TIMEOUT".into(), "30s".into());
    let flags = [(settings::LISTEN, "127.0.0.1:9002".to_string())];
    let (config, layers) = load(&flags, Some(&file), &e).unwrap();
    assert_eq!(
        config.listen,
        Listen::Address("127.0.0.1:9002".parse().unwrap())
    );
    assert_eq!(config.http.request_timeout, Duration::from_secs(30));
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(
        config.children.command,
        vec!["fixture-child", "--flag with space"]
    );
    assert_eq!(config.http.shutdown_grace, Duration::from_secs(10));
    let described = describe(&layers);
    assert!(described.contains("listen = \"127.0.0.1:9002\"  # flag --listen"));
    assert!(described.contains("request_timeout = \"30s\"  # environment FJMCP_REQUEST_TIMEOUT"));
    assert!(described.contains("log_format = \"text\"  # file"));
}

#[test]
fn public_url_must_be_https_or_loopback_http_without_path() {
    for ok in [
        "https://mcp.example.com",
        "https://mcp.example.com/",
        "http://localhost:8080",
        "http://127.0.0.1:3000",
        "http://[::1]:8080",
    ] {
        assert!(parse_public_url(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        parse_public_url("https://MCP.example.com/")
            .unwrap()
            .as_str(),
        "https://mcp.example.com"
    );
    for bad in [
        "http://mcp.example.com",
        "http://localhost.evil.com",
        "ftp://mcp.example.com",
        "https://mcp.example.com/broker",
        "https://user:pw@mcp.example.com",
        "https://mcp.example.com/?x=1",
        "not a url",
    ] {
        assert!(parse_public_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn store_urls() {
    assert!(
        matches!(parse_store("sqlite:/tmp/x.db"), Ok(StoreLocation::Sqlite(p)) if p == Path::new("/tmp/x.db"))
    );
    assert!(
        matches!(parse_store("sqlite://rel.db"), Ok(StoreLocation::Sqlite(p)) if p == Path::new("rel.db"))
    );
    assert!(matches!(
        parse_store("postgres://u:pw@127.0.0.1/db"),
        Ok(StoreLocation::Postgres(_))
    ));
    let err = parse_store("mysql://u:pw@host/db").unwrap_err();
    assert!(!err.contains("pw"), "{err}");
    assert!(parse_store("sqlite:").is_err());
}

#[test]
fn postgres_requires_an_explicit_sealing_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = required_env(dir.path());
    e.insert(
        "FJMCP_STORE".into(),
        "postgres://postgres@127.0.0.1/test".into(),
    );
    let p = problems(load(&[], None, &e));
    assert!(
        p.iter()
            .any(|m| m.contains("sealing_key_file is required with a PostgreSQL store"))
    );
}

#[test]
fn an_open_or_malformed_key_file_is_reported_with_the_other_problems() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "00".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut e = required_env(dir.path());
    e.insert("FJMCP_SEALING_KEY_FILE".into(), key.display().to_string());
    e.insert("FJMCP_LISTEN".into(), "nowhere".into());
    let p = problems(load(&[], None, &e));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().any(|m| m.contains("chmod 600")));
    assert!(
        p.iter()
            .any(|m| m.contains("listen (from environment FJMCP_LISTEN)"))
    );
}

#[test]
fn previous_sealing_keys_are_listed_and_each_must_be_usable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.key");
    SealingKey::generate(&old).unwrap();
    let older = dir.path().join("older.key");
    SealingKey::generate(&older).unwrap();
    let mut e = required_env(dir.path());
    e.insert(
        "FJMCP_SEALING_PREVIOUS_KEY_FILES".into(),
        format!("{}, {}", old.display(), older.display()),
    );
    let (config, _) = load(&[], None, &e).unwrap();
    assert_eq!(
        config.sealing_key.previous,
        vec![old.clone(), older.clone()]
    );

    // A TOML list works too.
    let file = dir.path().join("broker.toml");
    std::fs::write(
        &file,
        format!(
            "sealing_previous_key_files = [{:?}]\n",
            old.display().to_string()
        ),
    )
    .unwrap();
    let (config, _) = load(&[], Some(&file), &required_env(dir.path())).unwrap();
    assert_eq!(config.sealing_key.previous, vec![old]);

    // Unset: none.
    let (config, _) = load(&[], None, &required_env(dir.path())).unwrap();
    assert!(config.sealing_key.previous.is_empty());

    // A missing or open file is a configuration problem, named.
    std::fs::set_permissions(&older, std::fs::Permissions::from_mode(0o644)).unwrap();
    e.insert(
        "FJMCP_SEALING_PREVIOUS_KEY_FILES".into(),
        format!(
            "{},{}",
            dir.path().join("gone.key").display(),
            older.display()
        ),
    );
    let p = problems(load(&[], None, &e));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("sealing_previous_key_files"), "{p:?}");
    assert!(
        p[0].contains("gone.key") && p[0].contains("chmod 600"),
        "{p:?}"
    );
}

#[test]
fn client_secret_from_file_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-file\n").unwrap();
    let mut e = required_env(dir.path());
    e.remove("FJMCP_FORGEJO_CLIENT_SECRET");
    e.insert(
        "FJMCP_FORGEJO_CLIENT_SECRET_FILE".into(),
        secret.display().to_string(),
    );
    let (config, layers) = load(&[], None, &e).unwrap();
    assert_eq!(config.forgejo.client_secret.expose_secret(), "from-file");
    assert!(!describe(&layers).contains("from-file"));

    e.insert("FJMCP_FORGEJO_CLIENT_SECRET".into(), "too".into());
    let p = problems(load(&[], None, &e));
    assert!(p[0].contains("set only one of"));
}

#[test]
fn describe_redacts_secrets_and_store_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    SealingKey::generate(&key).unwrap();
    let mut e = required_env(dir.path());
    e.insert(
        "FJMCP_STORE".into(),
        "postgres://app:hunter2@db.internal/broker".into(),
    );
    e.insert("FJMCP_SEALING_KEY_FILE".into(), key.display().to_string());
    let (config, layers) = load(&[], None, &e).unwrap();
    let text = describe(&layers);
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("forgejo_client_secret = \"<redacted>\""));
    assert!(text.contains("postgres://app:***@db.internal/broker"));
    assert!(!format!("{config:?}").contains("hunter2"));
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn file_problems_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, "lisen = \"x\"\nmax_body_size = true\n").unwrap();
    let p = problems(load(&[], Some(&file), &required_env(dir.path())));
    assert!(p.iter().any(|m| m.contains("unknown setting `lisen`")));
    assert!(
        p.iter()
            .any(|m| m.contains("`max_body_size` must be a string"))
    );
    let p = problems(load(
        &[],
        Some(&dir.path().join("absent.toml")),
        &required_env(dir.path()),
    ));
    assert!(p[0].contains("absent.toml"));
}

#[test]
fn child_command_and_env_names() {
    assert_eq!(
        parse_command(r#"/opt/forgejo-mcp --transport stdio --user-agent "fjmcp broker""#).unwrap(),
        vec![
            "/opt/forgejo-mcp",
            "--transport",
            "stdio",
            "--user-agent",
            "fjmcp broker"
        ]
    );
    assert!(parse_command("").is_err());
    assert!(parse_command("unterminated \"quote").is_err());
    assert_eq!(
        parse_env_names("PATH, HOME,,SSL_CERT_FILE").unwrap(),
        vec!["PATH", "HOME", "SSL_CERT_FILE"]
    );
    assert!(parse_env_names("PATH,1BAD").is_err());
    assert!(parse_env_names("FORGEJO_ACCESS_TOKEN").is_err());
    let refused = parse_env_names("PATH,FJMCP_FORGEJO_CLIENT_SECRET").unwrap_err();
    assert!(refused.contains("FJMCP_FORGEJO_CLIENT_SECRET"), "{refused}");
    assert!(parse_env_names("FJMCP_STORE").is_err());
}

#[test]
fn the_listening_socket_can_come_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = required_env(dir.path());
    e.insert("FJMCP_LISTEN".into(), "stdin".into());
    let (config, _) = load(&[], None, &e).unwrap();
    assert_eq!(config.listen, Listen::Stdin);
}
