//! Every certificate of the Mozilla bundle, through the API, against `openssl x509`.

use cmp_client::ImportBody;
use cmp_testkit::openssl::{mozilla_roots, x509_view};

use crate::support::on_both_databases;

#[tokio::test]
async fn every_mozilla_root_matches_openssl() {
    let files = mozilla_roots();
    let expected: Vec<_> = files.iter().map(x509_view).collect();
    on_both_databases!(|app| {
        for (file, want) in files.iter().zip(&expected) {
            let result = app
                .admin
                .import(ImportBody::Raw(std::fs::read(file).unwrap()), &Default::default())
                .await
                .unwrap();
            assert_eq!(result.certificates.len(), 1, "{}", file.display());
            let got =
                app.admin.certificate(result.certificates[0].id.as_deref().unwrap()).await.unwrap();
            let rfc3339 = |t: time::OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339).unwrap()
            };
            let name = file.display();
            assert_eq!(got.fingerprint_sha256, want.fingerprint, "{name}");
            assert_eq!(got.serial_number, want.serial, "{name}");
            assert_eq!(got.subject, want.subject, "{name}");
            assert_eq!(got.issuer, want.issuer, "{name}");
            assert_eq!(rfc3339(got.not_before), want.not_before.replacen(" ", "T", 1), "{name}");
            assert_eq!(rfc3339(got.not_after), want.not_after.replacen(" ", "T", 1), "{name}");
        }
        assert_eq!(app.counts().await.0, files.len().min(500));
    });
}
