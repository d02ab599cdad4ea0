//! Printing results as aligned tables or JSON, to a standard output that may close early.
//!
//! Every write returns its error instead of panicking as `println!` does: `cmpctl ... | head`
//! closes the pipe after a few lines, and [`is_broken_pipe`] lets `main` end quietly then.

use std::io::Write;
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
    /// Aligned columns or `field  value` lines, for people.
    Table,
    /// The API's JSON, for scripts (`| jq`).
    Json,
}

/// Writes formatted text to standard output, returning the error `println!` would panic on.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to standard output; see [`outln!`].
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    std::io::stdout().lock().write_fmt(args)
}

/// Writes bytes (PEM, a CRL) to standard output as they are.
pub fn write_raw(bytes: &[u8]) -> std::io::Result<()> {
    std::io::stdout().lock().write_all(bytes)
}

/// Whether an error comes from writing to a standard output whose reader has gone away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints in the chosen format.
pub struct Output(pub Format);

fn date(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Prints rows as columns padded to their widest cell.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        outln!("{}", padded.join("  ").trim_end())
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect())?;
    for row in rows {
        line(row)?;
    }
    Ok(())
}

impl Output {
    fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<bool> {
        if self.0 == Format::Json {
            outln!("{}", serde_json::to_string_pretty(value)?)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One object: JSON, or `field: value` lines.
    pub fn value<T: Serialize>(&self, value: &T, fields: &[(&str, String)]) -> anyhow::Result<()> {
        if !self.json(value)? {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (key, text) in fields {
                outln!("{key:<width$}  {text}")?;
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
            table(headers, rows)?;
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
        table(headers, rows)?;
        if let Some(cursor) = &page.next_cursor {
            outln!("(more: --cursor {cursor})")?;
        }
        Ok(())
    }

    /// A message: `{"ok": true, "message": ...}` in JSON.
    pub fn done(&self, message: &str) -> anyhow::Result<()> {
        if !self.json(&serde_json::json!({"ok": true, "message": message}))? {
            outln!("{message}")?;
        }
        Ok(())
    }

    /// The failure of one item of several (an imported file): the others go on.
    pub fn error(&self, item: &str, e: &ClientError) -> anyhow::Result<()> {
        // A closed standard error is no reason to stop: the exit code still tells.
        let mut err = std::io::stderr().lock();
        match e {
            ClientError::Api(p) if self.0 == Format::Json => {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"file": item, "problem": p}))?
                )?;
            }
            ClientError::Api(p) => {
                let _ = writeln!(err, "{item}: {e}");
                for cause in &p.errors {
                    let _ =
                        writeln!(err, "  {}: {} ({})", cause.pointer, cause.detail, cause.reason);
                }
            }
            other => {
                let _ = writeln!(err, "{item}: {other}");
            }
        }
        Ok(())
    }

    /// What one imported file gave.
    pub fn import(&self, file: &Path, r: &ImportResponse) -> anyhow::Result<()> {
        if self.json(r)? {
            return Ok(());
        }
        outln!(
            "{}: {} created, {} already known, {} known elsewhere, {} refused",
            file.display(),
            r.created,
            r.already_known,
            r.known_elsewhere,
            r.rejected.len()
        )?;
        for c in &r.certificates {
            // Another team's certificate has no id to show: its fingerprint names it.
            let id = c.id.as_deref().unwrap_or(&c.fingerprint_sha256);
            outln!("  {:<15} {}  {}", c.outcome.as_str(), id, c.subject)?;
        }
        for x in &r.rejected {
            outln!("  refused         {}: {} ({})", x.item, x.detail, x.reason)?;
        }
        Ok(())
    }

    /// A page of certificates. The SHA256 column is a prefix that `cert show` also accepts.
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
                    display_name(c),
                    date(&c.not_after),
                    c.status.as_str().to_string(),
                    c.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
                    c.fingerprint_sha256.get(..16).unwrap_or(&c.fingerprint_sha256).to_string(),
                ]
            })
            .collect();
        table(&["id", "name", "not_after", "status", "owner", "sha256"], rows)?;
        if let Some(cursor) = &page.next_cursor {
            outln!("(more: --cursor {cursor})")?;
        }
        Ok(())
    }

    /// One certificate, every field.
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
            outln!("{k:<11} {v}")?;
        }
        for l in &c.locations {
            let when = match &l.gone_at {
                Some(gone) => format!("gone since {}", date(gone)),
                None => format!("last seen {}", date(&l.last_seen)),
            };
            let mut notes: Vec<String> =
                l.findings.iter().map(|f| f.as_str().to_string()).collect();
            if let Some(e) = &l.endpoint {
                notes.insert(0, format!("{} {}", e.protocol, e.tls_version));
            }
            let notes =
                if notes.is_empty() { String::new() } else { format!(" [{}]", notes.join(", ")) };
            outln!("location    {} {} ({when}){notes}", l.kind.as_str(), l.address)?;
        }
        Ok(())
    }

    /// Owners, as a table.
    pub fn owners(&self, owners: &[Owner]) -> anyhow::Result<()> {
        if self.json(&owners)? {
            return Ok(());
        }
        let rows = owners
            .iter()
            .map(|o| vec![o.id.clone(), o.name.clone(), o.email.clone().unwrap_or_default()])
            .collect();
        table(&["id", "name", "email"], rows)?;
        Ok(())
    }

    /// Who the caller is.
    pub fn me(&self, me: &cmp_api::Me) -> anyhow::Result<()> {
        if self.json(me)? {
            return Ok(());
        }
        let auth = serde_json::to_value(me.auth)?;
        outln!("actor:  {}", me.actor)?;
        outln!("role:   {}", me.role.as_str())?;
        outln!("auth:   {}", auth.as_str().unwrap_or_default())?;
        if let Some(email) = &me.email {
            outln!("email:  {email}")?;
        }
        if !me.owners.is_empty() {
            outln!("owners: {}", me.owners.join(", "))?;
        }
        Ok(())
    }

    /// A new token and its secret, which the server shows only this once.
    pub fn token_created(&self, t: &TokenCreated) -> anyhow::Result<()> {
        if self.json(t)? {
            return Ok(());
        }
        outln!(
            "token {} ({}) created. Its secret, shown only now:\n\n  {}\n",
            t.info.id,
            t.info.role.as_str(),
            t.token.expose()
        )?;
        Ok(())
    }

    /// Tokens, without their secrets.
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
        table(&["id", "name", "role", "expires", "state"], rows)?;
        Ok(())
    }

    /// A page of audit events.
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
        table(&["seq", "time", "actor", "action", "entity"], rows)?;
        if let Some(cursor) = &page.next_cursor {
            outln!("(more: --cursor {cursor})")?;
        }
        Ok(())
    }

    /// The audit chain check.
    pub fn verification(&self, v: &AuditVerification) -> anyhow::Result<()> {
        if self.json(v)? {
            return Ok(());
        }
        match (v.intact, v.first_broken_seq) {
            (true, _) => outln!("audit chain intact: {} events verified", v.checked)?,
            (false, seq) => outln!(
                "AUDIT CHAIN BROKEN at event {}: {} ({} events verified before it)",
                seq.map(|s| s.to_string()).unwrap_or_default(),
                v.reason.as_deref().unwrap_or(""),
                v.checked
            )?,
        }
        Ok(())
    }
}

/// What a certificate is called in a table: its common name, else its first subject
/// alternative name (certificates issued today often have only those), else its subject.
fn display_name(c: &Certificate) -> String {
    c.common_name
        .clone()
        .or_else(|| c.sans.first().map(|san| san.value.clone()))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| c.subject.clone())
}
