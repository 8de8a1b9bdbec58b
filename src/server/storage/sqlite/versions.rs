//! The `versions` table: keeping, listing and reading versions (see [`crate::server::storage::versions`]).

use crate::doc_id::DocId;
use crate::server::storage::versions::{
    authors_json, deflate, inflate, stored_info as info, HOURLY_MILLIS, MAX_INFLATED_BYTES,
    MAX_VERSIONS, RECENT_VERSIONS,
};
use crate::server::storage::{NewVersion, StoreError, Version, VersionInfo};
use rusqlite::{params, Connection, OptionalExtension};

pub fn add(conn: &mut Connection, version: &NewVersion) -> Result<Option<i64>, StoreError> {
    let txn = conn.transaction()?;
    let newest: Option<(String, Vec<u8>)> = txn
        .query_row(
            "SELECT title, content FROM versions WHERE doc = ?1 ORDER BY id DESC LIMIT 1",
            [version.doc.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let repeats = newest.is_some_and(|(title, content)| {
        title == version.title
            && inflate(&content, MAX_INFLATED_BYTES).as_deref() == Some(version.content.as_str())
    });
    if repeats {
        return Ok(None);
    }
    let authors = authors_json(&version.authors);
    txn.execute(
        "INSERT INTO versions (doc, created_at, authors, title, content) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            version.doc.as_str(),
            crate::server::storage::now_millis(),
            authors,
            version.title,
            deflate(&version.content)
        ],
    )?;
    let id = txn.last_insert_rowid();
    // Retention (see `storage::versions`): the recent ones, the newest of each hour, and no
    // more than the most in all.
    txn.execute(
        "DELETE FROM versions WHERE doc = ?1
           AND id NOT IN (SELECT id FROM versions WHERE doc = ?1 ORDER BY id DESC LIMIT ?2)
           AND id NOT IN (SELECT max(id) FROM versions WHERE doc = ?1 GROUP BY created_at / ?3)",
        params![version.doc.as_str(), RECENT_VERSIONS as i64, HOURLY_MILLIS],
    )?;
    txn.execute(
        "DELETE FROM versions WHERE doc = ?1 AND id NOT IN
           (SELECT id FROM versions WHERE doc = ?1 ORDER BY id DESC LIMIT ?2)",
        params![version.doc.as_str(), MAX_VERSIONS as i64],
    )?;
    txn.commit()?;
    Ok(Some(id))
}

pub fn list(conn: &Connection, doc: &DocId) -> Result<Vec<VersionInfo>, StoreError> {
    let mut query = conn.prepare_cached(
        "SELECT id, created_at, authors FROM versions WHERE doc = ?1 ORDER BY id DESC",
    )?;
    let rows = query.query_map([doc.as_str()], |r| {
        Ok(info(r.get(0)?, r.get(1)?, &r.get::<_, String>(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, doc: &DocId, id: i64) -> Result<Option<Version>, StoreError> {
    let row = conn
        .query_row(
            "SELECT created_at, authors, title, content FROM versions WHERE doc = ?1 AND id = ?2",
            params![doc.as_str(), id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((created_at, authors, title, content)) = row else {
        return Ok(None);
    };
    let content = inflate(&content, MAX_INFLATED_BYTES).ok_or(StoreError::Corrupt)?;
    Ok(Some(Version {
        info: info(id, created_at, &authors),
        title,
        content,
    }))
}
