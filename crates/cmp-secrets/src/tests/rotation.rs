//! Master key rotation: a new current key, every record re-wrapped, values intact.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{now, record_path, secret, secrets_dir, store};
use crate::{LocalSecretStore, SecretStore};

fn master_ids(data_dir: &std::path::Path) -> Vec<String> {
    fs::read_to_string(secrets_dir(data_dir).join("master.keys"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().into()
        })
        .collect()
}

fn record_master_key(data_dir: &std::path::Path, name: &str) -> String {
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(record_path(data_dir, name)).unwrap()).unwrap();
    record["master_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotate_then_read_everything() {
    let (dir, store) = store();
    let names: Vec<String> = (0..20).map(|i| format!("keys/req-{i}")).collect();
    for name in &names {
        store.put(name, &secret(name.as_bytes())).await.unwrap();
    }
    let old = store.current_master_key_id();
    let before: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::from_slice(&fs::read(record_path(dir.path(), n)).unwrap()).unwrap())
        .collect();
    // A leftover temporary file is not a record and is left alone.
    let stray = secrets_dir(dir.path()).join("records/.tmp-0011223344556677");
    fs::write(&stray, b"half-written").unwrap();

    let new = store.rotate_master_key(now()).await.unwrap();
    assert_ne!(new, old);
    assert_eq!(store.current_master_key_id(), new);
    assert_eq!(master_ids(dir.path()), vec![old.clone(), new.clone()]);
    assert_eq!(
        fs::metadata(secrets_dir(dir.path()).join("master.keys")).unwrap().permissions().mode()
            & 0o777,
        0o600
    );
    for (name, before) in names.iter().zip(&before) {
        assert_eq!(store.get(name).await.unwrap().expose(), name.as_bytes());
        let after: serde_json::Value =
            serde_json::from_slice(&fs::read(record_path(dir.path(), name)).unwrap()).unwrap();
        assert_eq!(after["master_key"], new.as_str());
        assert_ne!(after["wrapped_key"], before["wrapped_key"]);
        // Values are not re-encrypted.
        assert_eq!(after["ciphertext"], before["ciphertext"]);
        assert_eq!(after["value_nonce"], before["value_nonce"]);
    }
    assert_eq!(fs::read(&stray).unwrap(), b"half-written");

    // New writes use the new key; a reopened store reads everything.
    store.put("keys/after", &secret(b"after")).await.unwrap();
    assert_eq!(record_master_key(dir.path(), "keys/after"), new);
    drop(store);
    let reopened = LocalSecretStore::open(&secrets_dir(dir.path()), now()).unwrap();
    assert_eq!(reopened.current_master_key_id(), new);
    for name in &names {
        assert_eq!(reopened.get(name).await.unwrap().expose(), name.as_bytes());
    }
}

#[tokio::test]
async fn records_under_an_older_key_stay_readable() {
    let (dir, store) = store();
    store.put("keys/old", &secret(b"old")).await.unwrap();
    let old_record = fs::read(record_path(dir.path(), "keys/old")).unwrap();
    let first = store.current_master_key_id();
    store.rotate_master_key(now()).await.unwrap();
    let third = store.rotate_master_key(now()).await.unwrap();
    assert_eq!(master_ids(dir.path()).len(), 3);
    // As if a crash had left this record un-rewrapped: the first key is still in the file.
    fs::write(record_path(dir.path(), "keys/old"), &old_record).unwrap();
    assert_eq!(record_master_key(dir.path(), "keys/old"), first);
    assert_eq!(store.get("keys/old").await.unwrap().expose(), b"old");
    let fourth = store.rotate_master_key(now()).await.unwrap();
    assert_ne!(fourth, third);
    assert_eq!(record_master_key(dir.path(), "keys/old"), fourth);
    assert_eq!(store.get("keys/old").await.unwrap().expose(), b"old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_concurrent_with_reads_and_writes() {
    let (_dir, store) = store();
    for i in 0..20 {
        store.put(&format!("keys/{i}"), &secret(format!("v{i}").as_bytes())).await.unwrap();
    }
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..30 {
                    let i = (t * 7 + round) % 20;
                    let value = store.get(&format!("keys/{i}")).await.unwrap();
                    assert_eq!(value.expose(), format!("v{i}").as_bytes());
                    store.put(&format!("keys/new-{t}-{round}"), &secret(b"n")).await.unwrap();
                }
            })
        })
        .collect();
    for _ in 0..3 {
        store.rotate_master_key(now()).await.unwrap();
    }
    for reader in readers {
        reader.await.unwrap();
    }
    for t in 0..4 {
        for round in 0..30 {
            let value = store.get(&format!("keys/new-{t}-{round}")).await.unwrap();
            assert_eq!(value.expose(), b"n");
        }
    }
}
