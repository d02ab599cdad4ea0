//! The webhook channel: a JSON POST, signed with HMAC-SHA256 over the time and the body so
//! that receivers can check where it came from and refuse replays.

use aws_lc_rs::hmac;
use cmp_api::{WebhookChannel, WebhookFormat};

use super::message::Message;

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-cmp-signature";

/// The signature of `body` sent at `timestamp` under `key`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(format!("{timestamp}.").as_bytes());
    context.update(body);
    format!("t={timestamp},v1={}", hex::encode(context.sign().as_ref()))
}

/// Posts `message`; any answer but 2xx is a failure, with its status and the start of its
/// body.
pub async fn send(
    http: &reqwest::Client,
    channel: &WebhookChannel,
    signing_key: Option<&str>,
    message: &Message,
    now: i64,
) -> Result<(), String> {
    let body = match channel.format {
        WebhookFormat::Json => &message.body,
        WebhookFormat::Slack => &message.slack,
    };
    let body = serde_json::to_vec(body).map_err(|e| format!("body not written: {e}"))?;
    let mut request = http
        .post(&channel.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-cmp-delivery", &message.delivery_id);
    if let Some(key) = signing_key {
        request = request.header(SIGNATURE_HEADER, signature(key.as_bytes(), now, &body));
    }
    // reqwest's error names the URL, which may carry a token in its path: say only what
    // failed.
    let response = request.body(body).send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "no answer in time"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        format!("webhook: {what}")
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(format!("webhook answered {status}: {}", crate::error::cut(text.trim(), 200)))
}
