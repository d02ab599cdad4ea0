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
    let links: Vec<&(String, Vec<String>)> =
        links.iter().filter(|(_, chain)| !chain.is_empty()).collect();
    if links.is_empty() {
        return Ok(());
    }
    let mut delete =
        SqlBuilder::bulk(tx, "DELETE FROM certificate_chains WHERE certificate_id IN ");
    delete.row(links.iter().map(|(leaf, _)| Arg::Text(leaf.clone())));
    delete.query().execute(&mut **tx).await?;
    let mut insert = SqlBuilder::bulk(
        tx,
        "INSERT INTO certificate_chains (certificate_id, position, chain_certificate_id) VALUES ",
    );
    let mut first = true;
    for (leaf, chain) in links {
        for (position, member) in chain.iter().enumerate() {
            if !first {
                insert.push(", ");
            }
            first = false;
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            insert.row([Arg::Text(leaf.clone()), Arg::Int(position), Arg::Text(member.clone())]);
        }
    }
    insert.query().execute(&mut **tx).await?;
    Ok(())
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
