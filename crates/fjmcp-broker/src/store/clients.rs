//! OAuth clients: registered ones (RFC 7591) and cached client ID metadata documents.

use sqlx::any::AnyRow;

use super::{Store, StoreError, column};
use crate::crypto::SecretHash;
use crate::metrics::{OAuthEvent, metrics};

/// How the broker learned about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Dynamic client registration at `/oauth/register`.
    Registered,
    /// A `client_id` that is an https URL to a metadata document.
    MetadataDocument,
}

impl ClientKind {
    fn as_str(self) -> &'static str {
        match self {
            ClientKind::Registered => "registered",
            ClientKind::MetadataDocument => "metadata_document",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "registered" => Ok(ClientKind::Registered),
            "metadata_document" => Ok(ClientKind::MetadataDocument),
            other => Err(StoreError::Corrupt(format!("client kind {other:?}"))),
        }
    }
}

/// A client to register or refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    pub client_id: String,
    pub kind: ClientKind,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub application_type: String,
    pub token_endpoint_auth_method: String,
    /// Set for confidential clients only; the secret itself is never stored.
    pub client_secret_hash: Option<SecretHash>,
    /// The registered or fetched metadata, as JSON text.
    pub metadata: String,
    /// When a fetched metadata document must be fetched again.
    pub metadata_expires_at: Option<i64>,
}

/// A client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client: NewClient,
    pub created_at: i64,
}

impl Store {
    /// Stores a client, replacing an earlier version of the same `client_id`
    /// (a re-fetched metadata document) but keeping its creation time.
    pub async fn put_client(&self, client: &NewClient) -> Result<(), StoreError> {
        let redirect_uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO clients (client_id, kind, client_name, redirect_uris, application_type,
                 token_endpoint_auth_method, client_secret_hash, metadata, created_at, metadata_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (client_id) DO UPDATE SET
                 kind = excluded.kind, client_name = excluded.client_name,
                 redirect_uris = excluded.redirect_uris, application_type = excluded.application_type,
                 token_endpoint_auth_method = excluded.token_endpoint_auth_method,
                 client_secret_hash = excluded.client_secret_hash, metadata = excluded.metadata,
                 metadata_expires_at = excluded.metadata_expires_at",
        )
        .bind(&client.client_id)
        .bind(client.kind.as_str())
        .bind(client.client_name.as_deref())
        .bind(redirect_uris)
        .bind(&client.application_type)
        .bind(&client.token_endpoint_auth_method)
        .bind(client.client_secret_hash.as_ref().map(|h| h.as_str().to_string()))
        .bind(&client.metadata)
        .bind(self.now())
        .bind(client.metadata_expires_at)
        .execute(&self.inner.pool)
        .await?;
        if client.kind == ClientKind::Registered {
            metrics().oauth_event(OAuthEvent::ClientRegistered);
        }
        Ok(())
    }

    /// Looks a client up by its `client_id`.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query("SELECT * FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.inner.pool)
            .await?
            .map(|row| client_from_row(&row))
            .transpose()
    }
}

pub(super) fn client_from_row(row: &AnyRow) -> Result<ClientRecord, StoreError> {
    let redirect_uris: String = column(row, "redirect_uris")?;
    let redirect_uris = serde_json::from_str(&redirect_uris)
        .map_err(|e| StoreError::Corrupt(format!("redirect_uris: {e}")))?;
    let kind: String = column(row, "kind")?;
    Ok(ClientRecord {
        client: NewClient {
            client_id: column(row, "client_id")?,
            kind: ClientKind::parse(&kind)?,
            client_name: column(row, "client_name")?,
            redirect_uris,
            application_type: column(row, "application_type")?,
            token_endpoint_auth_method: column(row, "token_endpoint_auth_method")?,
            client_secret_hash: column::<Option<String>>(row, "client_secret_hash")?
                .map(SecretHash::from_stored),
            metadata: column(row, "metadata")?,
            metadata_expires_at: column(row, "metadata_expires_at")?,
        },
        created_at: column(row, "created_at")?,
    })
}
