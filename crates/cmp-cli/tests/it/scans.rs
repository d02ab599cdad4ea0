//! `cmpctl scan ...` as the README shows it, against a real nginx.

use cmp_testkit::targets::{TestCa, TlsServer};
use cmp_testkit::{DbKind, free_port};

use crate::{cmpctl, json, start_with, stdout};

#[tokio::test]
async fn a_person_scans_with_cmpctl_and_finds_the_certificate_served() {
    for kind in DbKind::ALL {
        let f = start_with(kind, |c| c.discovery.allowed_ranges = vec!["127.0.0.0/8".into()]).await;
        let leaf = TestCa::new().leaf("web");
        let nginx = TlsServer::nginx(&leaf);
        json(&f, &["owner", "create", "web-team"]).await;
        let ports = format!("{},{}", nginx.port, free_port());
        let create = ["scan", "create", "web", "--target", "127.0.0.1", "--ports", &ports];
        let created =
            json(&f, &[&create[..], &["--sni", "localhost", "--owner", "web-team"]].concat()).await;
        assert_eq!(created["owner"]["name"], "web-team", "{created}");
        assert_eq!(created["name"], "web", "{created}");

        let run = cmpctl(&f, &["scan", "run", "web", "--wait"]).await;
        let text = stdout(&run);
        assert!(run.status.success(), "{text}{}", String::from_utf8_lossy(&run.stderr));
        assert!(text.contains("completed"), "{text}");
        assert!(text.contains("2/2 scanned, 1 served, 1 certificates (1 new), 1 closed"), "{text}");

        let found = json(&f, &["cert", "list", "--finding", "untrusted_chain"]).await;
        let items = found["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{found}");
        assert_eq!(items[0]["fingerprint_sha256"], leaf.fingerprint.as_str());
        let shown = stdout(&cmpctl(&f, &["cert", "show", &leaf.fingerprint]).await);
        let at = format!("location    endpoint 127.0.0.1:{}#localhost", nginx.port);
        assert!(shown.contains(&at), "{shown}");

        let list = stdout(&cmpctl(&f, &["scan", "list"]).await);
        assert!(list.starts_with("NAME") && list.contains("completed"), "{list}");

        let refused = cmpctl(&f, &["scan", "create", "far", "--target", "10.0.0.1"]).await;
        assert!(!refused.status.success());
        let why = String::from_utf8_lossy(&refused.stderr);
        assert!(why.contains("422") && why.contains("outside the ranges allowed"), "{why}");
        f.server.shutdown().await.unwrap();
    }
}
