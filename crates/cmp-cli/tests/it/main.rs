//! cmpctl against a real server, on SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

mod help;
mod login;
mod notify;
mod plumbing;
mod scans;

use std::process::Output;

use cmp_store::{Dialect, SqlStore, Store};
use cmp_testkit::{DbKind, TestDb};
use serde_json::Value;

struct Fixture {
    base: String,
    token: String,
    db: TestDb,
    server: cmp_server::Server,
    _data: tempfile::TempDir,
}

async fn start(kind: DbKind) -> Fixture {
    start_with(kind, |_| {}).await
}

async fn start_with(kind: DbKind, adjust: impl FnOnce(&mut cmp_server::config::Config)) -> Fixture {
    // As cmpd's main does: the server's HTTP clients (webhooks) need it.
    cmp_testkit::install_crypto_provider();
    let db = TestDb::new(kind).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = cmp_server::config::Config::default();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.data_dir = data.path().to_path_buf();
    config.database.url = Some(db.url.clone());
    adjust(&mut config);
    let server = cmp_server::start(config).await.unwrap();
    Fixture {
        base: format!("http://{}", server.addr),
        token: server.admin_token.clone().unwrap(),
        db,
        server,
        _data: data,
    }
}

/// Runs cmpctl with the fixture's server and token in the environment.
async fn cmpctl(f: &Fixture, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(args)
        .env("CMP_SERVER", &f.base)
        .env("CMP_TOKEN", &f.token)
        .output()
        .await
        .unwrap()
}

/// A key and CSR for www.shop.example made with openssl in `dir`, as the README shows; the CSR's
/// path.
fn openssl_csr(dir: &std::path::Path) -> std::path::PathBuf {
    let made = std::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=www.shop.example"])
        .args(["-addext", "subjectAltName=DNS:www.shop.example"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    dir.join("req.csr")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn json(f: &Fixture, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = cmpctl(f, &all).await;
    assert!(out.status.success(), "cmpctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_person_manages_the_inventory_with_cmpctl_and_audit_verify_catches_tampering() {
    for kind in DbKind::ALL {
        let f = start(kind).await;
        let owner = json(&f, &["owner", "create", "web-team", "--email", "web@example.com"]).await;
        assert_eq!(owner[0]["name"], "web-team");

        let root = "/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt";
        let imported = json(&f, &["cert", "import", root, "--owner", "web-team"]).await;
        assert_eq!(imported["created"], 1, "{kind:?}");
        let id = imported["certificates"][0]["id"].as_str().unwrap().to_string();

        let listed = json(&f, &["cert", "list", "--owner", "web-team", "--status", "valid"]).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        let table = stdout(&cmpctl(&f, &["cert", "list"]).await);
        assert!(table.starts_with("ID") && table.contains("ISRG Root X1"), "{table}");
        let shown = stdout(&cmpctl(&f, &["cert", "show", &id]).await);
        assert!(shown.contains("CN=ISRG Root X1") && shown.contains("web-team"), "{shown}");
        let updated = json(&f, &["cert", "update", &id, "--label", "tier=gold"]).await;
        assert_eq!(updated["labels"]["tier"], "gold");
        let pem = stdout(&cmpctl(&f, &["cert", "pem", &id]).await);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

        let token = json(
            &f,
            &["token", "create", "--name", "dev", "--role", "developer", "--owner", "web-team"],
        )
        .await;
        assert!(token["token"].as_str().unwrap().starts_with("cmp_"));
        let tokens = stdout(&cmpctl(&f, &["token", "list"]).await);
        assert!(!tokens.contains(token["token"].as_str().unwrap()));

        // A refused input: non-zero exit, the reason on stderr.
        let bad = cmpctl(&f, &["cert", "import", "/etc/hostname"]).await;
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("422"), "{bad:?}");

        let audit = json(&f, &["audit", "list", "--action", "certificate.created"]).await;
        assert_eq!(audit["items"][0]["entity_id"], id.as_str());
        let ok = cmpctl(&f, &["audit", "verify"]).await;
        assert!(ok.status.success());
        assert!(stdout(&ok).contains("intact"), "{}", stdout(&ok));

        // Someone with database rights edits history behind the API's back.
        let store = SqlStore::connect(&f.db.url, 1).await.unwrap();
        let disable = match store.dialect() {
            Dialect::Sqlite => "DROP TRIGGER audit_logs_no_update",
            Dialect::Postgres => "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_change",
        };
        store.execute_raw(disable).await.unwrap();
        store
            .execute_raw("UPDATE audit_logs SET actor = 'token:someone-else' WHERE seq = 3")
            .await
            .unwrap();
        let broken = cmpctl(&f, &["audit", "verify"]).await;
        assert_eq!(broken.status.code(), Some(1), "{kind:?}");
        assert!(stdout(&broken).contains("BROKEN at event 3"), "{}", stdout(&broken));

        // Without a token: a clear error and exit code 2.
        let anon = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
            .args(["cert", "list"])
            .env("CMP_SERVER", &f.base)
            .env_remove("CMP_TOKEN")
            .output()
            .await
            .unwrap();
        assert_eq!(anon.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&anon.stderr).contains("401"));
        f.server.shutdown().await.unwrap();
    }
}

/// Runs cmpctl with another token in table form; its standard output, once it succeeded.
async fn table_as(f: &Fixture, token: &str, args: &[&str]) -> String {
    stdout(&succeeded_as(f, token, args).await)
}

/// Runs cmpctl with another token and checks that it succeeded.
async fn succeeded_as(f: &Fixture, token: &str, args: &[&str]) -> Output {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(args)
        .env("CMP_SERVER", &f.base)
        .env("CMP_TOKEN", token)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "cmpctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The value of a `key  value` line of a table-form answer ("" when the line is missing).
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?;
            // `request` must not match `request state`: the key is followed by spaces only.
            (rest.is_empty() || rest.starts_with("  ")).then(|| rest.trim())
        })
        .unwrap_or("")
}

/// Runs cmpctl with another token.
async fn cmpctl_as(f: &Fixture, token: &str, args: &[&str]) -> Value {
    let out = succeeded_as(f, token, &[args, &["--output", "json"]].concat()).await;
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The README's walk: owner and policy, a CSR request approved by security, the certificate
/// in the inventory, renewed, revoked, and the revocation seen in the CRL and in OCSP.
#[tokio::test]
async fn a_person_issues_renews_and_revokes_with_cmpctl() {
    for kind in DbKind::ALL {
        let f = start(kind).await;
        let owner = json(&f, &["owner", "create", "shop"]).await;
        let owner_id = owner[0]["id"].as_str().unwrap().to_string();
        let policy = json(
            &f,
            &[
                "policy",
                "set",
                "shop",
                "--allow",
                ".shop.example",
                "--key",
                "ec:256",
                "--max-validity-days",
                "90",
                "--require-approval",
            ],
        )
        .await;
        assert_eq!(policy["policy"]["require_approval"], true);
        let shown = table_as(&f, &f.token, &["policy", "show", "shop"]).await;
        assert_eq!(field(&shown, "allowed keys"), "ec:256", "{shown}");
        assert_eq!(field(&shown, "allowed names"), ".shop.example", "{shown}");

        // The README sets $DEV and $SEC this way: the secret alone on one line.
        let args = ["token", "create", "--name", "dev", "--role", "developer", "--owner", "shop"];
        let dev = table_as(&f, &f.token, &[&args[..], &["--quiet"]].concat()).await;
        let args = ["token", "create", "--name", "sec", "--role", "security", "-q"];
        let security = table_as(&f, &f.token, &args).await;
        for secret in [&dev, &security] {
            assert!(secret.starts_with("cmp_") && secret.lines().count() == 1, "{secret:?}");
        }
        let (dev, security) = (dev.trim().to_string(), security.trim().to_string());

        // The developer makes a key and CSR with openssl, as the README shows.
        let dir = tempfile::tempdir().unwrap();
        let csr = openssl_csr(dir.path());
        let csr = csr.to_str().unwrap();
        let args = ["managed", "create", "shop-www", "--owner", "shop", "--csr", csr];
        let managed = table_as(&f, &dev, &[&args[..], &["--validity-days", "60"]].concat()).await;
        assert_eq!(field(&managed, "current"), "", "waits for approval: {managed}");
        assert_eq!(field(&managed, "request state"), "awaiting_approval", "{managed}");
        let pending =
            cmpctl_as(&f, &security, &["request", "list", "--state", "awaiting_approval"]).await;
        let request = pending["items"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(field(&managed, "request"), request, "the request it printed is the one listed");
        let issued = cmpctl_as(&f, &security, &["approve", &request, "--comment", "ok"]).await;
        assert_eq!(issued["state"], "issued", "{issued}");
        let cert = issued["certificate_id"].as_str().unwrap().to_string();
        let pem = stdout(&cmpctl(&f, &["cert", "pem", &cert]).await);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // With --chain: the leaf, then the builtin CA's issuing and root certificates.
        let full = stdout(&cmpctl(&f, &["cert", "pem", &cert, "--chain"]).await);
        assert!(full.starts_with(&pem), "{full}");
        assert_eq!(full.matches("BEGIN CERTIFICATE").count(), 3, "{full}");
        let listed = cmpctl_as(&f, &dev, &["cert", "list", "--owner", &owner_id]).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

        // What the table's SHA256 column prints names the certificate too.
        let table = table_as(&f, &dev, &["cert", "list", "--owner", "shop"]).await;
        let short = table.lines().nth(1).unwrap().split_whitespace().last().unwrap().to_string();
        assert_eq!(short.len(), 16, "{table}");
        let by_prefix = table_as(&f, &dev, &["cert", "show", &short]).await;
        assert_eq!(field(&by_prefix, "id"), cert, "{by_prefix}");
        let pem_by_prefix = table_as(&f, &dev, &["cert", "pem", &short[..8]]).await;
        assert_eq!(pem_by_prefix, pem);
        let unknown = cmpctl(&f, &["cert", "show", "00000000deadbeef"]).await;
        assert_eq!(unknown.status.code(), Some(2));
        let said = String::from_utf8_lossy(&unknown.stderr);
        assert!(said.contains("no certificate") && said.contains("00000000deadbeef"), "{said}");

        let renewal = cmpctl_as(&f, &dev, &["renew", "shop-www"]).await;
        assert_eq!(renewal["state"], "awaiting_approval");
        let renewed = cmpctl_as(&f, &security, &["approve", renewal["id"].as_str().unwrap()]).await;
        assert_eq!(renewed["state"], "issued");
        let shown = cmpctl_as(&f, &dev, &["managed", "show", "shop-www"]).await;
        assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
        // Names are per owner: `owner/name` names it for callers who see several owners.
        let by_owner = cmpctl_as(&f, &security, &["managed", "show", "shop/shop-www"]).await;
        assert_eq!(by_owner["id"], shown["id"], "{by_owner}");
        assert_eq!(by_owner["owner_name"], "shop", "{by_owner}");

        let good = cmpctl_as(&f, &dev, &["pki", "ocsp", &cert]).await;
        assert!(good["message"].as_str().unwrap().starts_with("OCSP: good"), "{good}");
        // A carried-out revocation reads as revoked, though the API's state for it is `issued`.
        let revoked = table_as(&f, &security, &["revoke", &cert, "--reason", "superseded"]).await;
        assert_eq!((field(&revoked, "kind"), field(&revoked, "state")), ("revoke", "revoked"));
        let request_id = field(&revoked, "id").to_string();
        let wire = cmpctl_as(&f, &security, &["request", "show", &request_id]).await;
        assert_eq!(wire["state"], "issued", "{wire}");
        let requests = table_as(&f, &security, &["request", "list", "--kind", "revoke"]).await;
        let row = requests.lines().find(|l| l.starts_with(&request_id)).unwrap();
        assert_eq!(row.split_whitespace().nth(2), Some("revoked"), "{requests}");

        // The CRL and OCSP name the reason as --reason does.
        let crl = cmpctl_as(&f, &dev, &["pki", "crl"]).await;
        let serial =
            json(&f, &["cert", "show", &cert]).await["serial_number"].as_str().unwrap().to_string();
        let entry = crl
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["serial"].as_str().unwrap().eq_ignore_ascii_case(&serial))
            .unwrap_or_else(|| panic!("{crl} has {serial}"))
            .clone();
        assert_eq!(entry["reason"], "superseded", "{entry}");
        let crl_table = table_as(&f, &dev, &["pki", "crl"]).await;
        assert!(crl_table.lines().any(|l| l.ends_with("  superseded")), "{crl_table}");
        let answer = cmpctl_as(&f, &dev, &["pki", "ocsp", &cert]).await;
        let message = answer["message"].as_str().unwrap();
        assert!(message.starts_with("OCSP: revoked") && message.contains("superseded"), "{answer}");

        // In JSON, `managed create` gives the request it made under `request`.
        let args = ["managed", "create", "shop-api", "--owner", "shop", "--key-type", "ecdsa_p256"];
        let api = cmpctl_as(&f, &dev, &[&args[..], &["--dns", "api.shop.example"]].concat()).await;
        assert_eq!(api["name"], "shop-api");
        assert_eq!(api["request"]["state"], "awaiting_approval", "{api}");
        assert_eq!(api["request"]["managed_certificate_id"], api["id"], "{api}");
        // A server-made certificate has SANs only: the table names it by its first one.
        let request = api["request"]["id"].as_str().unwrap();
        let issued = cmpctl_as(&f, &security, &["approve", request]).await;
        assert_eq!(issued["state"], "issued", "{issued}");
        let table = table_as(&f, &dev, &["cert", "list", "--owner", "shop"]).await;
        assert!(table.lines().any(|l| l.contains("  api.shop.example  ")), "{table}");
        f.server.shutdown().await.unwrap();
    }
}

/// docs/VAULT.md's walk with cmpctl alone: a Vault PKI adapter from a config file (the token
/// never on the command line, never shown again), a request signed by Vault, a revocation seen
/// in Vault's CRL, new credentials, and an agent token.
#[tokio::test]
async fn a_person_issues_and_revokes_through_vault_with_cmpctl() {
    use cmp_testkit::openbao::OpenBao;
    use serde_json::json;

    for kind in DbKind::ALL {
        let bao = OpenBao::start().await;
        bao.enable_pki("pki").await;
        bao.pki_role("pki", "web", json!({"allow_any_name": false, "allowed_domains": "shop.example", "allow_subdomains": true})).await;
        bao.policy("cmp", include_str!("../../../../docs/vault/cmp-policy.hcl")).await;
        bao.agent_token_role().await;
        let token = bao.token(&["cmp"], "24h", true).await;
        let f = start(kind).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("vault.json");
        let body = json!({"address": bao.address, "role": "web",
                          "auth": {"method": "token", "token": token}});
        std::fs::write(&config, body.to_string()).unwrap();
        let at_config = format!("@{}", config.display());
        let out = cmpctl(
            &f,
            &["adapter", "create", "vault", "--kind", "vault_pki", "--config", &at_config],
        )
        .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!stdout(&out).contains(&token));
        let listed = json(&f, &["adapter", "list"]).await;
        assert!(!listed.to_string().contains(&token) && listed.to_string().contains("vault_pki"));

        json(&f, &["owner", "create", "shop"]).await;
        let csr = openssl_csr(dir.path());
        let args = ["request", "create", "--owner", "shop", "--adapter", "vault", "--csr"];
        let request = json(&f, &[&args[..], &[csr.to_str().unwrap()]].concat()).await;
        assert_eq!(request["state"], "issued", "{request}");
        let cert = request["certificate_id"].as_str().unwrap();
        let shown = json(&f, &["cert", "show", cert]).await;
        let serial = shown["serial_number"].as_str().unwrap().to_string();

        let revoked = json(&f, &["revoke", cert, "--reason", "superseded"]).await;
        assert_eq!(revoked["state"], "issued", "{revoked}");
        let crl = bao.api("GET", "pki/cert/crl", None).await;
        std::fs::write(dir.path().join("crl.pem"), crl["data"]["certificate"].as_str().unwrap())
            .unwrap();
        let text = std::process::Command::new("openssl")
            .args(["crl", "-in", "crl.pem", "-noout", "-text"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).to_lowercase().contains(&serial));

        let fresh = dir.path().join("credentials.json");
        let new_token = bao.token(&["cmp"], "24h", true).await;
        std::fs::write(&fresh, json!({"token": new_token}).to_string()).unwrap();
        let at_fresh = format!("@{}", fresh.display());
        let patched = json(&f, &["adapter", "credentials", "vault", "--from", &at_fresh]).await;
        assert_eq!(patched["has_credentials"], true);
        assert!(!patched.to_string().contains(&new_token));

        let agent = json(&f, &["adapter", "agent-token", "vault", "--agent", "web-01"]).await;
        assert_eq!(agent["sign_path"], "pki/sign/web");
        let agent_token = agent["token"].as_str().unwrap();
        assert_eq!(bao.try_api_as(agent_token, "GET", "auth/token/lookup-self", None).await.0, 200);
        f.server.shutdown().await.unwrap();
    }
}

/// The ACME walk of the README with cmpctl alone, against Pebble (with EAB): an adapter from a
/// config file (the HMAC never shown again), a request proved over dns-01 by the solver it
/// names, a revocation that Pebble reports.
#[tokio::test]
async fn a_person_issues_and_revokes_through_acme_with_cmpctl() {
    use cmp_testkit::pebble::{EAB_HMAC, EAB_KID, Pebble, PebbleOptions};
    use serde_json::json;

    for kind in DbKind::ALL {
        let pebble = Pebble::start(PebbleOptions { eab: true, ..Default::default() }).await;
        let f = start(kind).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("acme.json");
        let body = json!({"directory_url": pebble.directory, "ca_bundle": pebble.tls_pem,
            "contact_email": "pki@shop.example", "eab": {"key_id": EAB_KID, "hmac_key": EAB_HMAC},
            "solvers": [{"challenge": "dns-01", "id": "lab-dns",
                         "provider": {"kind": "webhook",
                                      "present_url": pebble.challtestsrv_url("set-txt"),
                                      "cleanup_url": pebble.challtestsrv_url("clear-txt")},
                         "propagation": {"nameservers": [pebble.dns.to_string()]}}]});
        std::fs::write(&config, body.to_string()).unwrap();
        let at_config = format!("@{}", config.display());
        let out =
            cmpctl(&f, &["adapter", "create", "pebble", "--kind", "acme", "--config", &at_config])
                .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed = json(&f, &["adapter", "list"]).await;
        assert!(!listed.to_string().contains(EAB_HMAC) && !stdout(&out).contains(EAB_HMAC));

        json(&f, &["owner", "create", "shop"]).await;
        let csr = dir.path().join("req.csr");
        std::fs::write(&csr, cmp_testkit::openssl::csr_pem_for_names(&["www.shop.example"]))
            .unwrap();
        let args = ["request", "create", "--owner", "shop", "--adapter", "pebble"];
        let args = [&args[..], &["--acme-solver", "lab-dns", "--csr", csr.to_str().unwrap()]];
        let request = json(&f, &args.concat()).await;
        assert_eq!(request["state"], "issued", "{request}");
        let cert = request["certificate_id"].as_str().unwrap();
        let serial =
            json(&f, &["cert", "show", cert]).await["serial_number"].as_str().unwrap().to_string();
        let revoked = json(&f, &["revoke", cert, "--reason", "key_compromise"]).await;
        assert_eq!(revoked["state"], "issued", "{revoked}");
        assert_eq!(pebble.cert_status(&serial).await["Status"], "Revoked");
        f.server.shutdown().await.unwrap();
    }
}
