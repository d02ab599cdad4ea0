//! The chain each issued certificate came with (`certificate_chains`): written with the leaf,
//! read for downloads, and consulted before a CA certificate is deleted.

use sqlx::{Any, Row, Transaction};

use crate::StoreResult;
use crate::sql::{Arg, SqlBuilder};

/// Records `chain` (inventory ids, issuing CA first) as the chain of `leaf`, replacing what was
/// recorded before. An empty chain leaves what is recorded (a CA that could not send the chain
/// again does not erase it).
pub(crate) async fn link_chains(
    tx: &mut Transaction<'_, Any>,
    links: &[(String, Vec<String>)],
) -> StoreResult<()> {
    let Some(insert) = chain_rows(tx, links) else {
        return Ok(());
    };
    let mut delete =
        SqlBuilder::bulk(tx, "DELETE FROM certificate_chains WHERE certificate_id IN ");
    delete.row(links.iter().filter(|(_, c)| !c.is_empty()).map(|(l, _)| Arg::Text(l.clone())));
    delete.query().execute(&mut **tx).await?;
    insert.query().execute(&mut **tx).await?;
    Ok(())
}

/// The INSERT of the chain rows of `links` (leaves with an empty chain have none), or `None`
/// when there are none. Alone, for leaves just created: the group commit sends it with its
/// other statements.
pub(crate) fn chain_rows(
    tx: &Transaction<'_, Any>,
    links: &[(String, Vec<String>)],
) -> Option<SqlBuilder> {
    let mut rows = links
        .iter()
        .flat_map(|(leaf, chain)| {
            chain.iter().enumerate().map(move |(at, member)| (leaf, at, member))
        })
        .peekable();
    rows.peek()?;
    let mut insert = SqlBuilder::bulk(
        tx,
        "INSERT INTO certificate_chains (certificate_id, position, chain_certificate_id) VALUES ",
    );
    for (i, (leaf, position, member)) in rows.enumerate() {
        if i > 0 {
            insert.push(", ");
        }
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        insert.row([Arg::Text(leaf.clone()), Arg::Int(position), Arg::Text(member.clone())]);
    }
    Some(insert)
}

/// The leaves (ids, at most `limit`) whose recorded chain holds `id`.
pub(crate) async fn chains_holding(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT DISTINCT certificate_id FROM certificate_chains WHERE chain_certificate_id = $1 \
         ORDER BY certificate_id LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|row| Ok(row.try_get("certificate_id")?)).collect()
}
