//! `cmpctl pki`: what a builtin CA publishes (CRL, OCSP), checked from outside.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use cmp_client::Client;
use cmp_domain::RevocationReason;
use cmp_pki::{OcspAnswer, ocsp_request, read_ocsp_response};
use x509_parser::prelude::FromDer;

use crate::output::{Output, write_raw};
use crate::resolve;

/// `cmpctl pki ...`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// List the revoked serials of a CA's CRL, with their RFC 5280 reasons.
    Crl {
        /// The builtin CA adapter's name.
        #[arg(long, default_value = "builtin")]
        ca: String,
        /// Also save the CRL (DER) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a CA's chain (PEM): what clients trust.
    Chain {
        /// The builtin CA adapter's name.
        #[arg(long, default_value = "builtin")]
        ca: String,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Ask the CA's OCSP responder about a certificate (signature checked).
    Ocsp {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
        /// The builtin CA adapter's name.
        #[arg(long, default_value = "builtin")]
        ca: String,
    },
}

/// The RFC 5280 name of a CRL reason code, as `--reason` takes it.
fn reason_name(code: u8) -> String {
    RevocationReason::from_code(code)
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| format!("code {code}"))
}

/// `cmpctl pki ...`: what a CA publishes, fetched without a token.
pub async fn pki(client: &Client, out: &Output, cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Crl { ca, out: file } => {
            let der = client.pki(&ca, "crl").await?;
            if let Some(path) = &file {
                std::fs::write(path, &der)
                    .with_context(|| format!("while writing {}", path.display()))?;
            }
            let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
                .map_err(|e| anyhow::anyhow!("the CRL does not parse: {e}"))?;
            let rows: Vec<Vec<String>> = crl
                .iter_revoked_certificates()
                .map(|r| {
                    // No reason extension means unspecified (RFC 5280 5.3.1).
                    let reason = r
                        .reason_code()
                        .map(|(_, c)| reason_name(c.0))
                        .unwrap_or_else(|| RevocationReason::Unspecified.as_str().into());
                    vec![
                        r.raw_serial_as_string().replace(':', ""),
                        r.revocation_date.to_rfc2822().unwrap_or_default(),
                        reason,
                    ]
                })
                .collect();
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::json!({"serial": r[0], "revoked_at": r[1], "reason": r[2]}))
                .collect();
            out.table_of(&json, &["SERIAL", "REVOKED AT", "REASON"], rows)?;
        }
        PkiCommand::Chain { ca, out: file } => {
            let pem = client.pki(&ca, "chain").await?;
            match file {
                Some(path) => std::fs::write(&path, &pem)
                    .with_context(|| format!("while writing {}", path.display()))?,
                None => write_raw(&pem)?,
            }
        }
        PkiCommand::Ocsp { id, ca } => {
            let id = resolve::certificate_id(client, &id).await?;
            let leaf = pem::parse(client.certificate_pem(&id).await?)?.contents().to_vec();
            let issuer = client.pki(&ca, "ca").await?;
            let request = ocsp_request(&leaf, &issuer)?;
            let answer = read_ocsp_response(&client.ocsp(&ca, request).await?, &issuer)?;
            let text = match &answer {
                OcspAnswer::Good => "good".to_string(),
                OcspAnswer::Unknown => "unknown".to_string(),
                OcspAnswer::Revoked { at, reason } => format!(
                    "revoked at {at} ({})",
                    reason_name(reason.unwrap_or(RevocationReason::Unspecified.code()))
                ),
            };
            out.done(&format!("OCSP: {text} (response signature verified)"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
