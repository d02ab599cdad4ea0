//! The email channel: one message per delivery through the rule's SMTP relay (lettre), over
//! STARTTLS, implicit TLS, or (on a trusted network) neither.

use std::time::Duration;

use cmp_api::{EmailChannel, SmtpTls};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::Message;

/// Sends `message`; the error says what failed (never the password).
pub async fn send(
    channel: &EmailChannel,
    password: Option<&str>,
    message: &Message,
    timeout: Duration,
) -> Result<(), String> {
    let parse = |address: &str| {
        address.parse::<Mailbox>().map_err(|e| format!("bad address {address:?}: {e}"))
    };
    let mut email = lettre::Message::builder()
        .from(parse(&channel.from)?)
        .subject(&message.subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &channel.to {
        email = email.to(parse(to)?);
    }
    let email = email.body(message.text.clone()).map_err(|e| format!("message not built: {e}"))?;

    let host = channel.smtp_host.trim();
    let tls = || {
        let mut params = TlsParameters::builder(host.to_string());
        if let Some(pem) = &channel.ca_pem {
            let ca = Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("ca_pem: {e}"))?;
            params = params.add_root_certificate(ca);
        }
        params.build().map_err(|e| format!("TLS settings: {e}"))
    };
    let (tls, port) = match channel.tls {
        SmtpTls::Starttls => (Tls::Required(tls()?), 587),
        SmtpTls::Tls => (Tls::Wrapper(tls()?), 465),
        SmtpTls::None => (Tls::None, 25),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(channel.smtp_port.unwrap_or(port))
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&channel.username, password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    let transport = transport.build();
    // The whole exchange, not only each step, is bounded: a relay that trickles is a failure.
    match tokio::time::timeout(timeout, transport.send(email)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("SMTP {host}: {e}")),
        Err(_) => Err(format!("SMTP {host}: no answer within {} s", timeout.as_secs())),
    }
}
