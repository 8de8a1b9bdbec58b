//! The `capabilities` table (see [`crate::server::storage::capabilities`]).

use crate::doc_id::DocId;
use crate::server::capability::Role;
use crate::server::storage::capabilities::{Capability, NewLink};
use crate::server::storage::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// The live link whose token hashes to `token_hash`, if any.
pub fn resolve(conn: &Connection, token_hash: &[u8; 32]) -> Result<Option<Capability>, StoreError> {
    // Every connection asks this: the statement is prepared once per database connection, not
    // parsed again each time.
    let row: Option<(String, String, i64)> = conn
        .prepare_cached("SELECT doc, role, generation FROM capabilities WHERE token_hash = ?1")?
        .query_row([&token_hash[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((doc, role, generation)) = row else {
        return Ok(None);
    };
    // A row this version did not write opens nothing.
    let (Ok(doc), Some(role), Ok(generation)) = (
        DocId::parse(&doc),
        Role::parse(&role),
        u32::try_from(generation),
    ) else {
        return Ok(None);
    };
    Ok(Some(Capability {
        doc,
        role,
        generation,
    }))
}

/// The generation of each of `doc`'s live links.
pub fn links(conn: &Connection, doc: &DocId) -> Result<Vec<(Role, u32)>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT role, generation FROM capabilities WHERE doc = ?1")?;
    let rows = statement.query_map([doc.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut links = Vec::new();
    for row in rows {
        let (role, generation) = row?;
        if let (Some(role), Ok(generation)) = (Role::parse(&role), u32::try_from(generation)) {
            links.push((role, generation));
        }
    }
    Ok(links)
}

/// Replaces `doc`'s `role` link with `link` (or adds it, and the document when it is new), in
/// one transaction: from the commit on, the old token opens nothing. A link of a deleted
/// document, or to a document that is not there (unless `link` makes it), is refused with
/// [`StoreError::Deleted`].
pub fn set_link(
    conn: &mut Connection,
    doc: &DocId,
    role: Role,
    link: NewLink,
) -> Result<(), StoreError> {
    let txn = conn.transaction()?;
    let gone = txn
        .query_row(
            "SELECT 1 FROM gone_links WHERE token_hash = ?1",
            [&link.token_hash[..]],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if gone {
        return Err(StoreError::Deleted);
    }
    if link.new_document {
        let now = crate::server::storage::now_millis();
        txn.execute(
            "INSERT INTO documents (id, title, created_at, updated_at) VALUES (?1, '', ?2, ?2)
             ON CONFLICT(id) DO NOTHING",
            params![doc.as_str(), now],
        )?;
    } else {
        // A live document has at least one link (one from before roles, its edit link at
        // generation 0); a row that changes brought back after a deletion has none.
        let there = txn
            .query_row(
                "SELECT 1 FROM capabilities WHERE doc = ?1 LIMIT 1",
                [doc.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !there {
            return Err(StoreError::Deleted);
        }
    }
    txn.execute(
        "DELETE FROM capabilities WHERE doc = ?1 AND role = ?2",
        params![doc.as_str(), role.as_str()],
    )?;
    txn.execute(
        "INSERT INTO capabilities (token_hash, doc, role, generation) VALUES (?1, ?2, ?3, ?4)",
        params![
            &link.token_hash[..],
            doc.as_str(),
            role.as_str(),
            i64::from(link.generation)
        ],
    )?;
    txn.commit()?;
    Ok(())
}

/// Whether `token_hash` is the hash of a link of a deleted document.
pub fn is_gone(conn: &Connection, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM gone_links WHERE token_hash = ?1")?
        .query_row([&token_hash[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Removes every row of `doc` (its metadata, log, versions and links), keeping only the hashes
/// of its live links as gone, in one transaction. Returns whether there was such a document.
/// What is deleted is overwritten (`secure_delete`), so the text is not left in free pages.
pub fn delete_document(conn: &mut Connection, doc: &DocId) -> Result<bool, StoreError> {
    conn.pragma_update(None, "secure_delete", true)?;
    let deleted = delete_rows(conn, doc);
    conn.pragma_update(None, "secure_delete", false)?;
    // The write-ahead log still holds the pages as they were; copied into the database, they
    // are overwritten there. Passive: it never waits for a reader (which would hold up every
    // commit behind this writer), and what readers still need goes at a later checkpoint.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    deleted
}

fn delete_rows(conn: &mut Connection, doc: &DocId) -> Result<bool, StoreError> {
    let txn = conn.transaction()?;
    let now = crate::server::storage::now_millis();
    txn.execute(
        "INSERT INTO gone_links (token_hash, deleted_at)
         SELECT token_hash, ?2 FROM capabilities WHERE doc = ?1
         ON CONFLICT(token_hash) DO NOTHING",
        params![doc.as_str(), now],
    )?;
    for table in [
        "DELETE FROM capabilities WHERE doc = ?1",
        "DELETE FROM versions WHERE doc = ?1",
        "DELETE FROM updates WHERE doc = ?1",
    ] {
        txn.execute(table, [doc.as_str()])?;
    }
    let existed = txn.execute("DELETE FROM documents WHERE id = ?1", [doc.as_str()])? > 0;
    txn.commit()?;
    Ok(existed)
}
