//! Printing results as aligned tables or JSON.

use std::path::Path;

use cmp_api::{
    ApiToken, AuditEvent, AuditVerification, Certificate, ImportResponse, Owner, Page, TokenCreated,
};
use cmp_client::ClientError;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints in the chosen format.
pub struct Output(pub Format);

fn date(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Prints rows as columns padded to their widest cell.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

impl Output {
    fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<bool> {
        if self.0 == Format::Json {
            println!("{}", serde_json::to_string_pretty(value)?);
            return Ok(true);
        }
        Ok(false)
    }

    /// One object: JSON, or `field: value` lines.
    pub fn value<T: Serialize>(&self, value: &T, fields: &[(&str, String)]) -> anyhow::Result<()> {
        if !self.json(value)? {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (key, text) in fields {
                println!("{key:<width$}  {text}");
            }
        }
        Ok(())
    }

    /// A list: JSON, or a table.
    pub fn table_of<T: Serialize>(
        &self,
        value: &T,
        headers: &[&str],
        rows: Vec<Vec<String>>,
    ) -> anyhow::Result<()> {
        if !self.json(value)? {
            table(headers, rows);
        }
        Ok(())
    }

    /// A page: JSON, or a table and the next cursor.
    pub fn rows<T: Serialize>(
        &self,
        page: &Page<T>,
        headers: &[&str],
        rows: Vec<Vec<String>>,
    ) -> anyhow::Result<()> {
        if self.json(page)? {
            return Ok(());
        }
        table(headers, rows);
        if let Some(cursor) = &page.next_cursor {
            println!("(more: --cursor {cursor})");
        }
        Ok(())
    }

    pub fn done(&self, message: &str) -> anyhow::Result<()> {
        if !self.json(&serde_json::json!({"ok": true, "message": message}))? {
            println!("{message}");
        }
        Ok(())
    }

    pub fn error(&self, item: &str, e: &ClientError) -> anyhow::Result<()> {
        match e {
            ClientError::Api(p) if self.0 == Format::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"file": item, "problem": p}))?
                )
            }
            ClientError::Api(p) => {
                eprintln!("{item}: {e}");
                for cause in &p.errors {
                    eprintln!("  {}: {} ({})", cause.pointer, cause.detail, cause.reason);
                }
            }
            other => eprintln!("{item}: {other}"),
        }
        Ok(())
    }

    pub fn import(&self, file: &Path, r: &ImportResponse) -> anyhow::Result<()> {
        if self.json(r)? {
            return Ok(());
        }
        println!(
            "{}: {} created, {} already known, {} refused",
            file.display(),
            r.created,
            r.already_known,
            r.rejected.len()
        );
        for c in &r.certificates {
            println!("  {:<13} {}  {}", c.outcome, c.id, c.subject);
        }
        for x in &r.rejected {
            println!("  refused       {}: {} ({})", x.item, x.detail, x.reason);
        }
        Ok(())
    }

    pub fn certificates(&self, page: &Page<Certificate>) -> anyhow::Result<()> {
        if self.json(page)? {
            return Ok(());
        }
        let rows = page
            .items
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    c.common_name.clone().unwrap_or_else(|| c.subject.clone()),
                    date(&c.not_after),
                    c.status.as_str().to_string(),
                    c.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
                    c.fingerprint_sha256.get(..16).unwrap_or(&c.fingerprint_sha256).to_string(),
                ]
            })
            .collect();
        table(&["id", "name", "not_after", "status", "owner", "sha256"], rows);
        if let Some(cursor) = &page.next_cursor {
            println!("(more: --cursor {cursor})");
        }
        Ok(())
    }

    pub fn certificate(&self, c: &Certificate) -> anyhow::Result<()> {
        if self.json(c)? {
            return Ok(());
        }
        let sans: Vec<String> = c.sans.iter().map(|s| s.value.clone()).collect();
        let findings: Vec<&str> = c.findings.iter().map(|f| f.as_str()).collect();
        let key = format!(
            "{} {}",
            c.key.kind.as_str(),
            c.key.bits.map(|b| b.to_string()).unwrap_or_default()
        );
        for (k, v) in [
            ("id", c.id.clone()),
            ("subject", c.subject.clone()),
            ("issuer", c.issuer.clone()),
            ("serial", c.serial_number.clone()),
            ("sha256", c.fingerprint_sha256.clone()),
            ("not_before", date(&c.not_before)),
            ("not_after", date(&c.not_after)),
            ("status", c.status.as_str().to_string()),
            ("sans", sans.join(", ")),
            ("key", key),
            ("signature", c.signature_algorithm.clone()),
            ("findings", findings.join(", ")),
            ("owner", c.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default()),
            (
                "labels",
                c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            ),
            ("source", c.source.clone()),
        ] {
            println!("{k:<11} {v}");
        }
        for l in &c.locations {
            println!(
                "location    {} {} (last seen {})",
                l.kind.as_str(),
                l.address,
                date(&l.last_seen)
            );
        }
        Ok(())
    }

    pub fn owners(&self, owners: &[Owner]) -> anyhow::Result<()> {
        if self.json(&owners)? {
            return Ok(());
        }
        let rows = owners
            .iter()
            .map(|o| vec![o.id.clone(), o.name.clone(), o.email.clone().unwrap_or_default()])
            .collect();
        table(&["id", "name", "email"], rows);
        Ok(())
    }

    pub fn token_created(&self, t: &TokenCreated) -> anyhow::Result<()> {
        if self.json(t)? {
            return Ok(());
        }
        println!(
            "token {} ({}) created. Its secret, shown only now:\n\n  {}\n",
            t.info.id,
            t.info.role.as_str(),
            t.token
        );
        Ok(())
    }

    pub fn tokens(&self, tokens: &[ApiToken]) -> anyhow::Result<()> {
        if self.json(&tokens)? {
            return Ok(());
        }
        let rows = tokens
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.role.as_str().to_string(),
                    t.expires_at.as_ref().map(date).unwrap_or_else(|| "never".into()),
                    if t.revoked_at.is_some() { "revoked" } else { "active" }.to_string(),
                ]
            })
            .collect();
        table(&["id", "name", "role", "expires", "state"], rows);
        Ok(())
    }

    pub fn audit(&self, page: &Page<AuditEvent>) -> anyhow::Result<()> {
        if self.json(page)? {
            return Ok(());
        }
        let rows = page
            .items
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    date(&e.occurred_at),
                    e.actor.clone(),
                    e.action.clone(),
                    format!("{}/{}", e.entity_type, e.entity_id),
                ]
            })
            .collect();
        table(&["seq", "time", "actor", "action", "entity"], rows);
        if let Some(cursor) = &page.next_cursor {
            println!("(more: --cursor {cursor})");
        }
        Ok(())
    }

    pub fn verification(&self, v: &AuditVerification) -> anyhow::Result<()> {
        if self.json(v)? {
            return Ok(());
        }
        match (v.intact, v.first_broken_seq) {
            (true, _) => println!("audit chain intact: {} events verified", v.checked),
            (false, seq) => println!(
                "AUDIT CHAIN BROKEN at event {}: {} ({} events verified before it)",
                seq.map(|s| s.to_string()).unwrap_or_default(),
                v.reason.as_deref().unwrap_or(""),
                v.checked
            ),
        }
        Ok(())
    }
}
