//! `fjmcp-broker admin …`: what an operator needs without SQL, on the store
//! and configuration `serve` uses. Lists print a table (or JSON with
//! `--json`); changes print what they did and leave an audit event.
//!
//! The store is opened as it is ([`Store::open_existing`]): never created,
//! never migrated, refused when its schema is not this broker's. An id that
//! names nothing is an error that changes nothing.

mod text;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::cli::{
    AdminArgs, AdminCommand, AuditArgs, ClientsAction, GrantsAction, GrantsListArgs,
    GrantsRevokeArgs, ListAction, SealKeyAction,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, parse_duration};
use crate::crypto::{KeyError, Sealer, SealingKey};
use crate::oauth::shown_host;
use crate::server;
use crate::store::{
    AuditEvent, GrantFilter, GrantRecord, GrantSelector, ResealReport, Store, StoreError,
};
use text::{Table, utc, utc_or_dash};

/// Why an admin command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A key file cannot be used (exit 2, like `serve`).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store is unreachable, or its schema is not this broker's (exit 1).
    #[error("cannot open the store: {0}")]
    Open(StoreError),
    /// A query failed after the store was opened (exit 1).
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// The user, client or grant named does not exist; nothing changed (exit 1).
    #[error("{0}; nothing was changed")]
    NotFound(String),
    /// The request cannot be carried out as asked (exit 2).
    #[error("{0}")]
    Refused(String),
    /// The command ran but left work undone, as the output says (exit 1).
    #[error("{0}")]
    Incomplete(String),
}

impl AdminError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Key(_) | AdminError::Refused(_) => 2,
            _ => 1,
        }
    }
}

/// Runs one admin command, writing what it prints to `out` (which holds the
/// report so far when an error is returned).
pub async fn run(args: &AdminArgs, config: &Config, out: &mut String) -> Result<(), AdminError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let AdminCommand::SealKey {
        action: SealKeyAction::Rotate { new_key_file },
    } = &args.command
    {
        return rotate(config, new_key_file, clock, args.json, out).await;
    }
    let sealer = server::sealer(&config.sealing_key, false)?;
    let store = open(config, sealer, clock.clone()).await?;
    let result = dispatch(&store, clock.as_ref(), args, out).await;
    store.close().await;
    result
}

async fn open(config: &Config, sealer: Sealer, clock: Arc<dyn Clock>) -> Result<Store, AdminError> {
    Store::open_existing(&config.store, Arc::new(sealer), clock)
        .await
        .map_err(AdminError::Open)
}

async fn dispatch(
    store: &Store,
    clock: &dyn Clock,
    args: &AdminArgs,
    out: &mut String,
) -> Result<(), AdminError> {
    let json = args.json;
    match &args.command {
        AdminCommand::Users {
            action: ListAction::List,
        } => list_users(store, json, out).await,
        AdminCommand::Clients {
            action: ClientsAction::List,
        } => list_clients(store, json, out).await,
        AdminCommand::Clients {
            action: ClientsAction::Delete { client_id },
        } => delete_client(store, client_id, json, out).await,
        AdminCommand::Grants {
            action: GrantsAction::List(filter),
        } => list_grants(store, filter, json, out).await,
        AdminCommand::Grants {
            action: GrantsAction::Revoke(target),
        } => revoke(store, target, json, out).await,
        AdminCommand::Sessions {
            action: ListAction::List,
        } => list_sessions(store, json, out).await,
        AdminCommand::Audit(audit) => list_audit(store, clock, audit, json, out).await,
        AdminCommand::Sweep => sweep(store, json, out).await,
        AdminCommand::SealKey { .. } => unreachable!("handled before the store is opened"),
    }
}

fn print_json(out: &mut String, value: &Value) {
    // Values built with `json!` always serialize.
    out.push_str(&serde_json::to_string_pretty(value).unwrap_or_default());
    out.push('\n');
}

/// The one user `id_or_login` names.
async fn user_id(store: &Store, id_or_login: &str) -> Result<String, AdminError> {
    let mut users = store.find_users(id_or_login).await?;
    match users.len() {
        0 => Err(AdminError::NotFound(format!(
            "no user has the id or login `{id_or_login}`"
        ))),
        1 => Ok(users.remove(0).identity.id),
        _ => Err(AdminError::Refused(format!(
            "several users have had the login `{id_or_login}` (ids {}); name one by its id",
            users
                .iter()
                .map(|u| u.identity.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn client_must_exist(store: &Store, client_id: &str) -> Result<(), AdminError> {
    match store.client(client_id).await? {
        Some(_) => Ok(()),
        None => Err(AdminError::NotFound(format!(
            "no client has the id `{client_id}`"
        ))),
    }
}

async fn list_users(store: &Store, json: bool, out: &mut String) -> Result<(), AdminError> {
    let users = store.list_users().await?;
    let credential = |has: bool, dead: Option<i64>| match (has, dead) {
        (_, Some(_)) => "dead",
        (true, None) => "stored",
        (false, None) => "none",
    };
    if json {
        let rows: Vec<Value> = users
            .iter()
            .map(|u| {
                json!({
                    "id": u.record.identity.id,
                    "login": u.record.identity.login,
                    "credential": credential(u.has_credential, u.record.credential_dead_at),
                    "access_expires_at": u.record.access_expires_at,
                    "credential_dead_at": u.record.credential_dead_at,
                    "live_grants": u.live_grants,
                    "created_at": u.record.created_at,
                    "updated_at": u.record.updated_at,
                })
            })
            .collect();
        print_json(out, &Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "LOGIN",
        "CREDENTIAL",
        "LIVE GRANTS",
        "FIRST SIGN-IN",
        "LAST UPDATE",
    ]);
    for u in &users {
        table.row(vec![
            u.record.identity.id.clone(),
            u.record.identity.login.clone(),
            credential(u.has_credential, u.record.credential_dead_at).to_string(),
            u.live_grants.to_string(),
            utc(u.record.created_at),
            utc(u.record.updated_at),
        ]);
    }
    out.push_str(&table.render("no users"));
    Ok(())
}

async fn list_clients(store: &Store, json: bool, out: &mut String) -> Result<(), AdminError> {
    let clients = store.list_clients().await?;
    let hosts = |uris: &[String]| {
        let mut hosts: Vec<String> = uris.iter().map(|u| shown_host(u)).collect();
        hosts.dedup();
        hosts.join(",")
    };
    if json {
        let rows: Vec<Value> = clients
            .iter()
            .map(|c| {
                let client = &c.record.client;
                json!({
                    "client_id": client.client_id,
                    "client_name": client.client_name,
                    "kind": match client.kind {
                        crate::store::ClientKind::Registered => "registered",
                        crate::store::ClientKind::MetadataDocument => "metadata_document",
                    },
                    "redirect_uris": client.redirect_uris,
                    "live_grants": c.live_grants,
                    "created_at": c.record.created_at,
                })
            })
            .collect();
        print_json(out, &Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new(&[
        "CLIENT ID",
        "NAME (self-declared)",
        "KIND",
        "REDIRECT HOSTS",
        "LIVE GRANTS",
        "CREATED",
    ]);
    for c in &clients {
        let client = &c.record.client;
        table.row(vec![
            client.client_id.clone(),
            client.client_name.clone().unwrap_or_else(|| "-".into()),
            match client.kind {
                crate::store::ClientKind::Registered => "registered".into(),
                crate::store::ClientKind::MetadataDocument => "metadata document".into(),
            },
            hosts(&client.redirect_uris),
            c.live_grants.to_string(),
            utc(c.record.created_at),
        ]);
    }
    out.push_str(&table.render("no clients"));
    Ok(())
}

async fn list_grants(
    store: &Store,
    filter: &GrantsListArgs,
    json: bool,
    out: &mut String,
) -> Result<(), AdminError> {
    let user_id = match &filter.user {
        Some(user) => Some(user_id(store, user).await?),
        None => None,
    };
    if let Some(client) = &filter.client {
        client_must_exist(store, client).await?;
    }
    let grants = store
        .list_grants(&GrantFilter {
            user_id,
            client_id: filter.client.clone(),
            include_revoked: filter.all,
        })
        .await?;
    if json {
        let rows: Vec<Value> = grants
            .iter()
            .map(|g| {
                json!({
                    "id": g.record.id,
                    "user_id": g.record.grant.user_id,
                    "login": g.login,
                    "client_id": g.record.grant.client_id,
                    "client_name": g.client_name,
                    "scopes": g.record.grant.scopes,
                    "created_at": g.record.created_at,
                    "last_used_at": g.last_used_at,
                    "revoked_at": g.record.revoked_at,
                })
            })
            .collect();
        print_json(out, &Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new(&[
        "GRANT",
        "USER",
        "CLIENT ID",
        "CLIENT NAME",
        "APPROVED",
        "LAST USED",
        "REVOKED",
    ]);
    for g in &grants {
        table.row(vec![
            g.record.id.clone(),
            g.login.clone(),
            g.record.grant.client_id.clone(),
            g.client_name.clone().unwrap_or_else(|| "-".into()),
            utc(g.record.created_at),
            utc_or_dash(g.last_used_at),
            utc_or_dash(g.record.revoked_at),
        ]);
    }
    out.push_str(&table.render(if filter.all {
        "no grants"
    } else {
        "no live grants"
    }));
    Ok(())
}

async fn list_sessions(store: &Store, json: bool, out: &mut String) -> Result<(), AdminError> {
    let sessions = store.list_sessions().await?;
    if json {
        let rows: Vec<Value> = sessions
            .iter()
            .map(|s| {
                json!({
                    "grant_id": s.grant_id,
                    "user_id": s.user_id,
                    "login": s.login,
                    "client_id": s.client_id,
                    "protocol_version": s.protocol_version,
                    "created_at": s.created_at,
                    "last_seen_at": s.last_seen_at,
                    "expires_at": s.expires_at,
                })
            })
            .collect();
        print_json(out, &Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new(&[
        "GRANT",
        "USER",
        "CLIENT ID",
        "PROTOCOL",
        "STARTED",
        "LAST SEEN",
        "EXPIRES",
    ]);
    for s in &sessions {
        table.row(vec![
            s.grant_id.clone(),
            s.login.clone(),
            s.client_id.clone(),
            s.protocol_version.clone(),
            utc(s.created_at),
            utc(s.last_seen_at),
            utc(s.expires_at),
        ]);
    }
    out.push_str(&table.render("no live sessions"));
    Ok(())
}

async fn revoke(
    store: &Store,
    target: &GrantsRevokeArgs,
    json: bool,
    out: &mut String,
) -> Result<(), AdminError> {
    let (selector, named) = match (&target.user, &target.client, &target.grant) {
        (Some(user), _, _) => {
            let id = user_id(store, user).await?;
            (GrantSelector::User(id.clone()), format!("user {id}"))
        }
        (_, Some(client), _) => (
            GrantSelector::Client(client.clone()),
            format!("client {client}"),
        ),
        (_, _, Some(grant)) => (
            GrantSelector::Grant(grant.clone()),
            format!("grant {grant}"),
        ),
        // clap insists on exactly one.
        (None, None, None) => {
            return Err(AdminError::Refused(
                "name --user, --client or --grant".into(),
            ));
        }
    };
    let Some(revoked) = store.revoke_grants(&selector).await? else {
        return Err(AdminError::NotFound(format!("there is no {named}")));
    };
    for grant in &revoked {
        audit_revocation(store, grant).await?;
    }
    if json {
        let ids: Vec<&str> = revoked.iter().map(|g| g.id.as_str()).collect();
        print_json(out, &json!({ "revoked": ids }));
        return Ok(());
    }
    if revoked.is_empty() {
        let _ = writeln!(out, "{named} has no live grant; nothing to revoke");
        return Ok(());
    }
    for grant in &revoked {
        let _ = writeln!(
            out,
            "revoked grant {} (user {}, client {}); the client must be approved again",
            grant.id, grant.grant.user_id, grant.grant.client_id
        );
    }
    let _ = writeln!(out, "{} grant(s) revoked", revoked.len());
    Ok(())
}

async fn audit_revocation(store: &Store, grant: &GrantRecord) -> Result<(), AdminError> {
    store
        .append_audit(&AuditEvent {
            kind: "grant.revoked".into(),
            user_id: Some(grant.grant.user_id.clone()),
            client_id: Some(grant.grant.client_id.clone()),
            detail: json!({ "grant_id": grant.id, "by": "admin", "consent_withdrawn": true }),
        })
        .await?;
    Ok(())
}

async fn delete_client(
    store: &Store,
    client_id: &str,
    json: bool,
    out: &mut String,
) -> Result<(), AdminError> {
    let Some(client) = store.client(client_id).await? else {
        return Err(AdminError::NotFound(format!(
            "no client has the id `{client_id}`"
        )));
    };
    let Some(revoked) = store.delete_client(client_id).await? else {
        return Err(AdminError::NotFound(format!(
            "no client has the id `{client_id}`"
        )));
    };
    store
        .append_audit(&AuditEvent {
            kind: "client.deleted".into(),
            user_id: None,
            client_id: Some(client_id.to_string()),
            detail: json!({ "by": "admin", "grants_revoked": revoked }),
        })
        .await?;
    if json {
        print_json(
            out,
            &json!({ "deleted": client_id, "grants_revoked": revoked }),
        );
        return Ok(());
    }
    let _ = writeln!(
        out,
        "deleted client {client_id} ({}); {revoked} live grant(s) revoked",
        client.client.client_name.as_deref().unwrap_or("no name")
    );
    if client.client.kind == crate::store::ClientKind::MetadataDocument {
        let _ = writeln!(
            out,
            "note: its client_id is a metadata document URL; if it asks again, the broker fetches it anew and users are asked to approve it again"
        );
    }
    Ok(())
}

async fn list_audit(
    store: &Store,
    clock: &dyn Clock,
    audit: &AuditArgs,
    json: bool,
    out: &mut String,
) -> Result<(), AdminError> {
    let since = parse_duration(&audit.since)
        .map_err(|why| AdminError::Refused(format!("--since: {why}")))?;
    let since = clock.now() - crate::clock::seconds(since);
    let user_id = match &audit.user {
        Some(user) => Some(user_id(store, user).await?),
        None => None,
    };
    let events = store
        .audit_events(Some(since), user_id.as_deref(), i64::from(audit.limit))
        .await?;
    if json {
        let rows: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "at": e.at,
                    "kind": e.event.kind,
                    "user_id": e.event.user_id,
                    "client_id": e.event.client_id,
                    "detail": e.event.detail,
                })
            })
            .collect();
        print_json(out, &Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new(&["TIME", "EVENT", "USER", "CLIENT", "DETAIL"]);
    for e in &events {
        table.row(vec![
            utc(e.at),
            e.event.kind.clone(),
            e.event.user_id.clone().unwrap_or_else(|| "-".into()),
            e.event.client_id.clone().unwrap_or_else(|| "-".into()),
            e.event.detail.to_string(),
        ]);
    }
    out.push_str(&table.render(&format!("no events since {}", utc(since))));
    Ok(())
}

async fn sweep(store: &Store, json: bool, out: &mut String) -> Result<(), AdminError> {
    let swept = store.sweep_expired().await?;
    let counts = [
        ("pending_authorizations", swept.pending_authorizations),
        ("auth_codes", swept.auth_codes),
        ("access_tokens", swept.access_tokens),
        ("refresh_tokens", swept.refresh_tokens),
        ("sessions", swept.sessions),
        ("account_logins", swept.account_logins),
        ("account_sessions", swept.account_sessions),
    ];
    if json {
        let map: serde_json::Map<String, Value> = counts
            .iter()
            .map(|(name, n)| (name.to_string(), json!(n)))
            .collect();
        print_json(out, &Value::Object(map));
        return Ok(());
    }
    for (name, n) in counts {
        let _ = writeln!(out, "{name}: {n} deleted");
    }
    Ok(())
}

/// `seal-key rotate`: re-seal everything under the new key, which the
/// configuration must already name, so that brokers running with it can open
/// every value this writes.
async fn rotate(
    config: &Config,
    new_key_file: &Path,
    clock: Arc<dyn Clock>,
    json: bool,
    out: &mut String,
) -> Result<(), AdminError> {
    let new_key = SealingKey::load(new_key_file)?;
    let configured = server::sealer(&config.sealing_key, false)?;
    let new_id = new_key.id_hex();
    let current_id = configured.current_key_id();
    let previous_ids = configured.previous_key_ids();
    if new_id != current_id && !previous_ids.contains(&new_id) {
        return Err(AdminError::Refused(format!(
            "the configuration does not name {} (key id {new_id}): brokers running with it could not open the values re-sealed under it. \
             Set sealing_key_file to it and add the current key file ({}) to sealing_previous_key_files, restart the broker(s), then run this again",
            new_key_file.display(),
            config.sealing_key.path.display()
        )));
    }
    // The new key seals; every key the configuration holds still opens.
    let mut sealer = Sealer::new(new_key);
    for path in std::iter::once(&config.sealing_key.path).chain(&config.sealing_key.previous) {
        sealer = sealer.with_previous(SealingKey::load(path)?);
    }
    let store = open(config, sealer, clock).await?;
    let report = store.reseal_all().await;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let audited = store
        .append_audit(&AuditEvent {
            kind: "sealing_key.rotated".into(),
            user_id: None,
            client_id: None,
            detail: json!({
                "key_id": new_id,
                "resealed": report.columns.iter().map(|c| c.resealed).sum::<u64>(),
                "remaining": report.remaining,
            }),
        })
        .await;
    store.close().await;
    audited?;
    print_rotation(&report, &new_id, new_id == current_id, json, out);
    if report.remaining > 0 {
        return Err(AdminError::Incomplete(format!(
            "{} sealed value(s) are still not under key {new_id}; keep the previous key files configured",
            report.remaining
        )));
    }
    Ok(())
}

fn print_rotation(
    report: &ResealReport,
    new_id: &str,
    is_current: bool,
    json: bool,
    out: &mut String,
) {
    if json {
        let columns: Vec<Value> = report
            .columns
            .iter()
            .map(|c| {
                json!({
                    "column": c.name,
                    "already_current": c.already_current,
                    "resealed": c.resealed,
                    "replaced_meanwhile": c.replaced_meanwhile,
                    "unopenable": c.unopenable.len(),
                })
            })
            .collect();
        print_json(
            out,
            &json!({ "key_id": new_id, "columns": columns, "remaining": report.remaining }),
        );
        return;
    }
    let mut table = Table::new(&[
        "SEALED COLUMN",
        "ALREADY UNDER NEW KEY",
        "RE-SEALED",
        "REPLACED MEANWHILE",
        "UNOPENABLE",
    ]);
    for c in &report.columns {
        table.row(vec![
            c.name.clone(),
            c.already_current.to_string(),
            c.resealed.to_string(),
            c.replaced_meanwhile.to_string(),
            c.unopenable.len().to_string(),
        ]);
    }
    out.push_str(&table.render("no sealed columns"));
    for c in &report.columns {
        for (row, why) in &c.unopenable {
            let _ = writeln!(out, "cannot open {} of row {row}: {why}", c.name);
        }
    }
    if report.remaining == 0 {
        let _ = writeln!(out, "every sealed value is now under key {new_id}");
        if is_current {
            let _ = writeln!(
                out,
                "the previous key files can be removed from sealing_previous_key_files (restart the broker(s) after)"
            );
        } else {
            let _ = writeln!(
                out,
                "brokers still seal with the configured sealing_key_file: make {new_id}'s file the sealing_key_file next"
            );
        }
    }
}
