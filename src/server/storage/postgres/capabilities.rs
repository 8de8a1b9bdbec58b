//! The `capabilities` table in PostgreSQL: the same rules as SQLite's (see
//! [`crate::server::storage::capabilities`]).

use crate::doc_id::DocId;
use crate::server::capability::Role;
use crate::server::storage::capabilities::{Capability, NewLink};
use crate::server::storage::StoreError;
use tokio_postgres::Client;

/// Every connection asks this: the statement is prepared once per pooled connection, not once
/// per call (a round trip of its own).
pub async fn resolve(
    client: &deadpool_postgres::Client,
    token_hash: &[u8; 32],
) -> Result<Option<Capability>, StoreError> {
    let statement = client
        .prepare_cached("SELECT doc, role, generation FROM capabilities WHERE token_hash = $1")
        .await?;
    let row = client.query_opt(&statement, &[&&token_hash[..]]).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (doc, role, generation): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
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

pub async fn links(client: &Client, doc: &DocId) -> Result<Vec<(Role, u32)>, StoreError> {
    let rows = client
        .query(
            "SELECT role, generation FROM capabilities WHERE doc = $1",
            &[&doc.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let role = Role::parse(row.get(0))?;
            let generation = u32::try_from(row.get::<_, i32>(1)).ok()?;
            Some((role, generation))
        })
        .collect())
}

pub async fn set_link(
    client: &mut Client,
    doc: &DocId,
    role: Role,
    link: NewLink,
) -> Result<(), StoreError> {
    let generation = i32::try_from(link.generation)
        .map_err(|_| StoreError::Unsupported("a link generation past 2^31"))?;
    let txn = client.transaction().await?;
    let gone = txn
        .query_opt(
            "SELECT 1 FROM gone_links WHERE token_hash = $1",
            &[&&link.token_hash[..]],
        )
        .await?
        .is_some();
    if gone {
        return Err(StoreError::Deleted);
    }
    if link.new_document {
        let now = crate::server::storage::now_millis();
        txn.execute(
            "INSERT INTO documents (id, title, created_at, updated_at) VALUES ($1, '', $2, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&doc.as_str(), &now],
        )
        .await?;
    }
    // The document's row lock, as a deletion takes it: a reset waits for a deletion in
    // progress, then finds the document gone.
    let there = txn
        .query_opt(
            "SELECT 1 FROM documents WHERE id = $1 FOR UPDATE",
            &[&doc.as_str()],
        )
        .await?
        .is_some();
    // A live document has at least one link (one from before roles, its edit link at
    // generation 0); a row that changes brought back after a deletion has none.
    let linked = link.new_document
        || txn
            .query_opt(
                "SELECT 1 FROM capabilities WHERE doc = $1 LIMIT 1",
                &[&doc.as_str()],
            )
            .await?
            .is_some();
    if !there || !linked {
        return Err(StoreError::Deleted);
    }
    txn.execute(
        "DELETE FROM capabilities WHERE doc = $1 AND role = $2",
        &[&doc.as_str(), &role.as_str()],
    )
    .await?;
    txn.execute(
        "INSERT INTO capabilities (token_hash, doc, role, generation) VALUES ($1, $2, $3, $4)",
        &[
            &&link.token_hash[..],
            &doc.as_str(),
            &role.as_str(),
            &generation,
        ],
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn is_gone(
    client: &deadpool_postgres::Client,
    token_hash: &[u8; 32],
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached("SELECT 1 FROM gone_links WHERE token_hash = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&&token_hash[..]])
        .await?
        .is_some())
}

/// Removes every row of `doc`, keeping only the hashes of its live links as gone, in one
/// transaction that holds the document's row lock (as appends take it): an instance writing
/// to it waits, then finds it gone.
pub async fn delete_document(client: &mut Client, doc: &DocId) -> Result<bool, StoreError> {
    let txn = client.transaction().await?;
    txn.execute(
        "SELECT 1 FROM documents WHERE id = $1 FOR UPDATE",
        &[&doc.as_str()],
    )
    .await?;
    let now = crate::server::storage::now_millis();
    txn.execute(
        "INSERT INTO gone_links (token_hash, deleted_at)
         SELECT token_hash, $2 FROM capabilities WHERE doc = $1
         ON CONFLICT (token_hash) DO NOTHING",
        &[&doc.as_str(), &now],
    )
    .await?;
    for table in [
        "DELETE FROM capabilities WHERE doc = $1",
        "DELETE FROM versions WHERE doc = $1",
        "DELETE FROM updates WHERE doc = $1",
    ] {
        txn.execute(table, &[&doc.as_str()]).await?;
    }
    let existed = txn
        .execute("DELETE FROM documents WHERE id = $1", &[&doc.as_str()])
        .await?
        > 0;
    txn.commit().await?;
    Ok(existed)
}
