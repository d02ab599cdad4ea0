//! Every certificate of the Mozilla bundle, through the API, against `openssl x509`.

use std::process::Command;

use cmp_client::ImportBody;

use crate::support::on_both_databases;

struct OpensslFacts {
    fingerprint: String,
    serial: String,
    subject: String,
    issuer: String,
    not_before: String,
    not_after: String,
}

fn openssl_facts(path: &std::path::Path) -> OpensslFacts {
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-serial",
            "-subject",
            "-issuer",
            "-nameopt",
            "RFC2253",
            "-startdate",
            "-enddate",
            "-dateopt",
            "iso_8601",
            "-in",
        ])
        .arg(path)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {text}"))
            .trim()
            .to_string()
    };
    // openssl prints "2015-06-04 11:04:38Z"; the API prints RFC 3339.
    let date = |s: String| s.replacen(' ', "T", 1);
    OpensslFacts {
        fingerprint: field("sha256 Fingerprint=").replace(':', "").to_lowercase(),
        serial: field("serial=").to_lowercase(),
        subject: field("subject="),
        issuer: field("issuer="),
        not_before: date(field("notBefore=")),
        not_after: date(field("notAfter=")),
    }
}

#[tokio::test]
async fn every_mozilla_root_matches_openssl() {
    let mut files: Vec<_> = std::fs::read_dir("/usr/share/ca-certificates/mozilla")
        .expect("Debian's ca-certificates is installed")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    files.sort();
    assert!(files.len() > 100, "only {} files", files.len());
    let expected: Vec<_> = files.iter().map(|f| openssl_facts(f)).collect();
    on_both_databases!(|app| {
        for (file, want) in files.iter().zip(&expected) {
            let result = app
                .admin
                .import(ImportBody::Raw(std::fs::read(file).unwrap()), &Default::default())
                .await
                .unwrap();
            assert_eq!(result.certificates.len(), 1, "{}", file.display());
            let got = app.admin.certificate(&result.certificates[0].id).await.unwrap();
            let rfc3339 = |t: time::OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339).unwrap()
            };
            let name = file.display();
            assert_eq!(got.fingerprint_sha256, want.fingerprint, "{name}");
            assert_eq!(got.serial_number, want.serial, "{name}");
            assert_eq!(got.subject, want.subject, "{name}");
            assert_eq!(got.issuer, want.issuer, "{name}");
            assert_eq!(rfc3339(got.not_before), want.not_before, "{name}");
            assert_eq!(rfc3339(got.not_after), want.not_after, "{name}");
        }
        assert_eq!(app.counts().await.0, files.len().min(500));
    });
}
