//! The store contract: roundtrip, absence, overwrite, names, redaction, concurrency.

use std::sync::Arc;

use super::{secret, store};
use crate::{SecretBytes, SecretError, SecretStore};

#[tokio::test]
async fn put_get_delete_roundtrip() {
    let (_dir, store) = store();
    let value = secret(b"-----BEGIN PRIVATE KEY-----\nMIGHAgEA...\n");
    store.put("ca/0193/issuing-key", &value).await.unwrap();
    let read = store.get("ca/0193/issuing-key").await.unwrap();
    assert_eq!(read.expose(), value.expose());
    store.delete("ca/0193/issuing-key").await.unwrap();
    assert_eq!(
        store.get("ca/0193/issuing-key").await.unwrap_err(),
        SecretError::NotFound("ca/0193/issuing-key".into())
    );
}

#[tokio::test]
async fn empty_and_binary_values() {
    let (_dir, store) = store();
    store.put("empty", &secret(b"")).await.unwrap();
    assert!(store.get("empty").await.unwrap().expose().is_empty());
    let binary: Vec<u8> = (0..=255).collect();
    store.put("binary", &secret(&binary)).await.unwrap();
    assert_eq!(store.get("binary").await.unwrap().expose(), &binary);
}

#[tokio::test]
async fn missing_secret_is_not_found_and_delete_is_idempotent() {
    let (_dir, store) = store();
    assert_eq!(
        store.get("keys/absent").await.unwrap_err(),
        SecretError::NotFound("keys/absent".into())
    );
    store.delete("keys/absent").await.unwrap();
    store.put("keys/present", &secret(b"x")).await.unwrap();
    store.delete("keys/present").await.unwrap();
    store.delete("keys/present").await.unwrap();
}

#[tokio::test]
async fn put_overwrites() {
    let (_dir, store) = store();
    store.put("keys/r1", &secret(b"first")).await.unwrap();
    store.put("keys/r1", &secret(b"second, longer value")).await.unwrap();
    assert_eq!(store.get("keys/r1").await.unwrap().expose(), b"second, longer value");
}

#[tokio::test]
async fn names_are_validated_by_every_operation() {
    let (_dir, store) = store();
    let long = "a".repeat(201);
    let bad = [
        "",
        "/ca/x",
        "ca//x",
        "ca/x/",
        "ca/../x",
        "a..b",
        "ca/./x",
        "CA/x",
        "ca x",
        "ca\\x",
        "kéy",
        "ca/x\n",
        long.as_str(),
    ];
    for name in bad {
        let put = store.put(name, &secret(b"v")).await.unwrap_err();
        assert!(matches!(put, SecretError::InvalidName(_)), "{name:?}: {put:?}");
        let get = store.get(name).await.unwrap_err();
        assert!(matches!(get, SecretError::InvalidName(_)), "{name:?}: {get:?}");
        let delete = store.delete(name).await.unwrap_err();
        assert!(matches!(delete, SecretError::InvalidName(_)), "{name:?}: {delete:?}");
    }
    let max = "b".repeat(200);
    let good = ["a", "ca/0193a/issuing-key", "keys/req-1.pem", "x_y/z-0.9", max.as_str()];
    for name in good {
        store.put(name, &secret(name.as_bytes())).await.unwrap();
        assert_eq!(store.get(name).await.unwrap().expose(), name.as_bytes());
    }
}

#[test]
fn debug_of_secret_bytes_is_redacted() {
    let value = SecretBytes::new(b"hunter2-secret".to_vec());
    let debug = format!("{value:?}");
    assert_eq!(debug, "Secret(<redacted>)");
    assert!(!debug.contains("hunter2"));
    assert!(!format!("{value:#?}").contains("hunter2"));
    assert_eq!(value.expose().len(), 14);
}

#[test]
fn debug_of_store_shows_no_key_material() {
    let (_dir, store) = store();
    let debug = format!("{store:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    let master = std::fs::read_to_string(_dir.path().join("secrets/master.keys")).unwrap();
    let line: serde_json::Value = serde_json::from_str(master.lines().next().unwrap()).unwrap();
    let key_hex = line["key"].as_str().unwrap();
    assert!(!debug.contains(key_hex));
}

#[tokio::test]
async fn backend_and_check() {
    let (_dir, store) = store();
    assert_eq!(store.backend(), "local");
    store.check().await.unwrap();
    let dyn_store: Arc<dyn SecretStore> = Arc::new(store);
    dyn_store.check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_and_gets() {
    let (_dir, store) = store();
    let store: Arc<dyn SecretStore> = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let name = format!("keys/req-{}", i % 16);
            let value = format!("value-{i}");
            store.put(&name, &secret(value.as_bytes())).await.unwrap();
            // Another task may have replaced it since: any value written under the name is fine.
            let read = store.get(&name).await.unwrap();
            let read = String::from_utf8(read.expose().to_vec()).unwrap();
            let j: usize = read.strip_prefix("value-").unwrap().parse().unwrap();
            assert_eq!(j % 16, i % 16);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
