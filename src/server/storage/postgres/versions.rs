//! The `versions` table in PostgreSQL: the same rules as SQLite's (see
//! [`crate::server::storage::versions`]). Compressing and inflating happen on the caller's
//! thread ([`Kept::of`], [`Stored::read`]), not on the store's two workers.

use crate::doc_id::DocId;
use crate::server::storage::versions::{
    authors_json, deflate, inflate, stored_info as info, HOURLY_MILLIS, MAX_INFLATED_BYTES,
    MAX_VERSIONS, RECENT_VERSIONS,
};
use crate::server::storage::{NewVersion, StoreError, Version, VersionInfo};
use tokio_postgres::Client;

/// A version ready to keep: its text deflated, its names as JSON.
pub struct Kept {
    doc: String,
    title: String,
    authors: String,
    content: Vec<u8>,
}

impl Kept {
    pub fn of(version: &NewVersion) -> Kept {
        Kept {
            doc: version.doc.as_str().to_owned(),
            title: super::storable(&version.title),
            authors: authors_json(&version.authors),
            content: deflate(&version.content),
        }
    }
}

/// A version as stored, its text still deflated.
pub struct Stored {
    id: i64,
    created_at: i64,
    authors: String,
    title: String,
    content: Vec<u8>,
}

impl Stored {
    pub fn read(self) -> Result<Version, StoreError> {
        let content = inflate(&self.content, MAX_INFLATED_BYTES).ok_or(StoreError::Corrupt)?;
        Ok(Version {
            info: info(self.id, self.created_at, &self.authors),
            title: self.title,
            content,
        })
    }
}

/// Keeps `version` unless it repeats the newest one kept (the same title and the same
/// deflated text: deflating is deterministic), then applies the retention rules.
pub async fn add(client: &mut Client, version: &Kept) -> Result<Option<i64>, StoreError> {
    let txn = client.transaction().await?;
    let doc = version.doc.as_str();
    // The document's versions are kept one writer at a time, by several instances too.
    txn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&doc])
        .await?;
    let newest = txn
        .query_opt(
            "SELECT title, content FROM versions WHERE doc = $1 ORDER BY id DESC LIMIT 1",
            &[&doc],
        )
        .await?;
    let repeats = newest.is_some_and(|row| {
        row.get::<_, &str>(0) == version.title && row.get::<_, &[u8]>(1) == version.content
    });
    if repeats {
        return Ok(None);
    }
    let id: i64 = txn
        .query_one(
            "INSERT INTO versions (doc, created_at, authors, title, content)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &doc,
                &crate::server::storage::now_millis(),
                &version.authors,
                &version.title,
                &version.content,
            ],
        )
        .await?
        .get(0);
    txn.execute(
        "DELETE FROM versions WHERE doc = $1
           AND id NOT IN (SELECT id FROM versions WHERE doc = $1 ORDER BY id DESC LIMIT $2)
           AND id NOT IN (SELECT max(id) FROM versions WHERE doc = $1 GROUP BY created_at / $3)",
        &[&doc, &(RECENT_VERSIONS as i64), &HOURLY_MILLIS],
    )
    .await?;
    txn.execute(
        "DELETE FROM versions WHERE doc = $1 AND id NOT IN
           (SELECT id FROM versions WHERE doc = $1 ORDER BY id DESC LIMIT $2)",
        &[&doc, &(MAX_VERSIONS as i64)],
    )
    .await?;
    txn.commit().await?;
    Ok(Some(id))
}

pub async fn list(client: &Client, doc: &DocId) -> Result<Vec<VersionInfo>, StoreError> {
    let rows = client
        .query(
            "SELECT id, created_at, authors FROM versions WHERE doc = $1 ORDER BY id DESC",
            &[&doc.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| info(r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub async fn get(client: &Client, doc: &DocId, id: i64) -> Result<Option<Stored>, StoreError> {
    let row = client
        .query_opt(
            "SELECT created_at, authors, title, content FROM versions WHERE doc = $1 AND id = $2",
            &[&doc.as_str(), &id],
        )
        .await?;
    Ok(row.map(|row| Stored {
        id,
        created_at: row.get(0),
        authors: row.get(1),
        title: row.get(2),
        content: row.get(3),
    }))
}
