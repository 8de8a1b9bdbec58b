//! The `versions` table in PostgreSQL: the same rules as SQLite's (see
//! [`crate::server::storage::versions`]).

use crate::doc_id::DocId;
use crate::server::storage::versions::{
    deflate, inflate, tidy_authors, HOURLY_MILLIS, MAX_VERSIONS, RECENT_VERSIONS,
};
use crate::server::storage::{NewVersion, StoreError, Version, VersionInfo};
use tokio_postgres::Client;

/// Largest text a stored version may inflate to: more than any document may hold.
const MAX_INFLATED_BYTES: usize = 256 * 1024 * 1024;

pub async fn add(client: &mut Client, version: &NewVersion) -> Result<Option<i64>, StoreError> {
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
        row.get::<_, String>(0) == version.title
            && inflate(row.get::<_, &[u8]>(1), MAX_INFLATED_BYTES).as_deref()
                == Some(version.content.as_str())
    });
    if repeats {
        return Ok(None);
    }
    let authors = serde_json::to_string(&tidy_authors(version.authors.iter().cloned()))
        .unwrap_or_else(|_| "[]".into());
    let id: i64 = txn
        .query_one(
            "INSERT INTO versions (doc, created_at, authors, title, content)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &doc,
                &crate::server::storage::now_millis(),
                &authors,
                &version.title,
                &deflate(&version.content),
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

fn info(id: i64, created_at: i64, authors: &str) -> VersionInfo {
    VersionInfo {
        id,
        created_at,
        // Written by `add`; anything unreadable shows as no names.
        authors: serde_json::from_str(authors).unwrap_or_default(),
    }
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

pub async fn get(client: &Client, doc: &DocId, id: i64) -> Result<Option<Version>, StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT created_at, authors, title, content FROM versions WHERE doc = $1 AND id = $2",
            &[&doc.as_str(), &id],
        )
        .await?
    else {
        return Ok(None);
    };
    let content = inflate(row.get::<_, &[u8]>(3), MAX_INFLATED_BYTES).ok_or(StoreError::Corrupt)?;
    Ok(Some(Version {
        info: info(id, row.get(0), row.get(1)),
        title: row.get(2),
        content,
    }))
}
