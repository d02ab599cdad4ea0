//! `cmpctl notify ...` as the README shows it, against a real SMTP relay.

use cmp_testkit::DbKind;
use cmp_testkit::smtp::{SmtpOptions, SmtpSink};

use crate::{cmpctl, json, start_with, stdout};

#[tokio::test]
async fn a_person_sets_up_email_notices_with_cmpctl_and_a_test_arrives() {
    let f = start_with(DbKind::Sqlite, |c| c.notify.interval_secs = 86_400).await;
    let relay = SmtpSink::start(SmtpOptions::default());
    let port = relay.port.to_string();
    let created = json(
        &f,
        &[
            "notify",
            "create",
            "security-mail",
            "--email-to",
            "sec@example.test",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &port,
            "--smtp-tls",
            "none",
            "--threshold",
            "14",
            "--threshold",
            "3",
        ],
    )
    .await;
    assert_eq!(created["thresholds_days"], serde_json::json!([14, 3]), "{created}");
    assert_eq!(created["channel"]["kind"], "email");

    let sent = cmpctl(&f, &["notify", "test", "security-mail"]).await;
    let text = stdout(&sent);
    assert!(sent.status.success(), "{text}{}", String::from_utf8_lossy(&sent.stderr));
    assert!(text.contains("sent"), "{text}");
    let mail = relay.wait_for(1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].data.contains("Test notification of rule security-mail"), "{}", mail[0].data);

    let list = stdout(&cmpctl(&f, &["notify", "deliveries"]).await);
    assert!(list.starts_with("CREATED") && list.contains("sent"), "{list}");

    // A relay that is not there: the test send fails, and says why.
    drop(relay);
    let failed = cmpctl(&f, &["notify", "test", "security-mail"]).await;
    assert!(!failed.status.success());
    assert!(stdout(&failed).contains("failed"), "{}", stdout(&failed));

    let refused = cmpctl(&f, &["notify", "create", "bad", "--webhook", "ftp://x.example/"]).await;
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("422") && why.contains("channel/url"), "{why}");
    f.server.shutdown().await.unwrap();
}
