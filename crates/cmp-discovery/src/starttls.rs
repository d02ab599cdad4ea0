//! The plain-text dialogue before TLS on mail ports: SMTP `STARTTLS` (RFC 3207), IMAP
//! `STARTTLS` (RFC 3501) and POP3 `STLS` (RFC 2595). Replies are read with bounds (line
//! length, line count) so that a server that talks forever fails the endpoint, not the scan.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ProbeError;
use crate::targets::Protocol;

/// Longest reply line read, and most lines in one reply.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 64;

/// Speaks `protocol` on `stream` until the server is ready for a TLS handshake.
pub(crate) async fn negotiate(
    stream: &mut TcpStream,
    protocol: Protocol,
) -> Result<(), ProbeError> {
    let mut reader = LineReader::default();
    match protocol {
        Protocol::Tls => Ok(()),
        Protocol::Smtp => {
            expect_smtp(&reader.smtp_reply(stream).await?, "220", "greeting")?;
            send(stream, b"EHLO cmp-discovery.invalid\r\n").await?;
            let ehlo = reader.smtp_reply(stream).await?;
            expect_smtp(&ehlo, "250", "EHLO")?;
            if !ehlo.iter().any(|l| l.get(4..).is_some_and(|t| t.eq_ignore_ascii_case("STARTTLS")))
            {
                return Err(ProbeError::StartTls("the SMTP server does not offer STARTTLS".into()));
            }
            send(stream, b"STARTTLS\r\n").await?;
            expect_smtp(&reader.smtp_reply(stream).await?, "220", "STARTTLS")
        }
        Protocol::Imap => {
            let greeting = reader.line(stream).await?;
            if !greeting.starts_with("* OK") {
                return Err(unexpected("IMAP greeting", &greeting));
            }
            send(stream, b"a001 STARTTLS\r\n").await?;
            for _ in 0..MAX_LINES {
                let line = reader.line(stream).await?;
                if let Some(status) = line.strip_prefix("a001 ") {
                    return if status.starts_with("OK") {
                        Ok(())
                    } else {
                        Err(unexpected("IMAP STARTTLS", &line))
                    };
                }
            }
            Err(ProbeError::StartTls("the IMAP server never answered STARTTLS".into()))
        }
        Protocol::Pop3 => {
            let greeting = reader.line(stream).await?;
            if !greeting.starts_with("+OK") {
                return Err(unexpected("POP3 greeting", &greeting));
            }
            send(stream, b"STLS\r\n").await?;
            let answer = reader.line(stream).await?;
            if answer.starts_with("+OK") { Ok(()) } else { Err(unexpected("POP3 STLS", &answer)) }
        }
    }
}

async fn send(stream: &mut TcpStream, line: &[u8]) -> Result<(), ProbeError> {
    stream.write_all(line).await.map_err(ProbeError::io)
}

fn unexpected(step: &str, line: &str) -> ProbeError {
    let shown: String =
        line.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
    ProbeError::StartTls(format!("unexpected {step} answer: {shown:?}"))
}

fn expect_smtp(reply: &[String], code: &str, step: &str) -> Result<(), ProbeError> {
    match reply.last() {
        Some(last) if last.starts_with(code) => Ok(()),
        Some(last) => Err(unexpected(&format!("SMTP {step}"), last)),
        None => Err(ProbeError::StartTls(format!("no SMTP {step} answer"))),
    }
}

/// Reads CRLF (or LF) lines, keeping what came after the last one for the next call.
#[derive(Default)]
struct LineReader {
    pending: Vec<u8>,
}

impl LineReader {
    async fn line(&mut self, stream: &mut TcpStream) -> Result<String, ProbeError> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.pending.len() > MAX_LINE {
                return Err(ProbeError::StartTls(format!(
                    "a line longer than {MAX_LINE} bytes: not a mail server"
                )));
            }
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.map_err(ProbeError::io)?;
            if n == 0 {
                return Err(ProbeError::StartTls("the server closed the connection".into()));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }

    /// An SMTP reply: lines `NNN-text` up to the last, `NNN text`.
    async fn smtp_reply(&mut self, stream: &mut TcpStream) -> Result<Vec<String>, ProbeError> {
        let mut lines = Vec::new();
        while lines.len() < MAX_LINES {
            let line = self.line(stream).await?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Ok(lines);
            }
        }
        Err(ProbeError::StartTls(format!("an SMTP reply longer than {MAX_LINES} lines")))
    }
}
