//! The files on disk: permissions, what they reveal, tampering, reopening.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::{now, record_path, secret, secrets_dir, store};
use crate::{LocalSecretStore, SecretError, SecretStore};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &std::path::Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn new_store_layout_and_modes() {
    let (dir, _store) = store();
    let secrets = secrets_dir(dir.path());
    assert_eq!(mode(&secrets.join("master.keys")), 0o600);
    assert_eq!(mode(&secrets), 0o700);
    assert_eq!(mode(&secrets.join("records")), 0o700);
    let master = fs::read_to_string(secrets.join("master.keys")).unwrap();
    let lines: Vec<&str> = master.lines().collect();
    assert_eq!(lines.len(), 1);
    let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let id = line["id"].as_str().unwrap();
    assert!(id.starts_with("mk-") && id.len() == 11, "{id}");
    assert_eq!(line["key"].as_str().unwrap().len(), 64);
    // The time the store was opened at, as it was given.
    assert_eq!(line["created_at"].as_u64().unwrap(), 1_800_000_000);
}

#[test]
fn master_key_file_readable_by_others_is_refused() {
    let (dir, store) = store();
    drop(store);
    let master = secrets_dir(dir.path()).join("master.keys");
    for bad in [0o644, 0o640, 0o604, 0o660, 0o700 | 0o007] {
        set_mode(&master, bad);
        let err = LocalSecretStore::open(&secrets_dir(dir.path()), now()).unwrap_err();
        let SecretError::Unavailable(message) = &err else { panic!("{err:?}") };
        assert!(message.contains(&format!("{bad:04o}")), "{message}");
        assert!(message.contains("0600") && message.contains("chmod 600"), "{message}");
    }
    set_mode(&master, 0o600);
    LocalSecretStore::open(&secrets_dir(dir.path()), now()).unwrap();
    set_mode(&master, 0o400);
    LocalSecretStore::open(&secrets_dir(dir.path()), now()).unwrap();
}

#[tokio::test]
async fn check_notices_a_master_key_file_made_public() {
    let (dir, store) = store();
    store.check().await.unwrap();
    set_mode(&secrets_dir(dir.path()).join("master.keys"), 0o644);
    assert!(matches!(store.check().await.unwrap_err(), SecretError::Unavailable(_)));
}

#[test]
fn unusable_master_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(dir.path());
    fs::create_dir_all(&secrets).unwrap();
    let master = secrets.join("master.keys");
    let cases: [&[u8]; 6] = [
        br#"{"id":"mk-0000000a","key":"00","created_at":"1111111111111111"}"#,
        b"",
        b"\n\n",
        b"not json\n",
        br#"{"id":"mk-0000000a","key":"00","created_at":1}"#,
        b"{\"id\":\"mk-0000000a\",\"key\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"created_at\":1}\n{\"id\":\"mk-0000000a\",\"key\":\"1111111111111111111111111111111111111111111111111111111111111111\",\"created_at\":2}\n",
    ];
    for contents in cases {
        fs::write(&master, contents).unwrap();
        set_mode(&master, 0o600);
        let err = LocalSecretStore::open(&secrets, now()).unwrap_err();
        assert!(matches!(err, SecretError::Unavailable(_)), "{err:?}");
        // Messages never quote key material.
        assert!(!err.to_string().contains("1111111111"), "{err}");
    }
}

#[tokio::test]
async fn record_file_reveals_neither_value_nor_name() {
    let (dir, store) = store();
    let name = "ca/0193-visible-name/issuing-key";
    let value = b"PLAINTEXT-PRIVATE-KEY-MATERIAL-0123456789";
    store.put(name, &secret(value)).await.unwrap();
    let path = record_path(dir.path(), name);
    assert_eq!(mode(&path), 0o600);
    let record = fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&record);
    for needle in [&value[..], name.as_bytes(), b"visible", b"PLAINTEXT"] {
        assert!(!record.windows(needle.len()).any(|w| w == needle));
        assert!(!text.contains(&hex::encode(needle)));
    }
    let listing: Vec<String> = fs::read_dir(secrets_dir(dir.path()).join("records"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listing.len(), 1, "{listing:?}");
    assert!(!listing[0].contains("visible"));
    assert_eq!(listing[0].len(), 64);
}

#[tokio::test]
async fn flipping_any_byte_of_a_record_is_corrupt() {
    let (dir, store) = store();
    store.put("keys/req-7", &secret(b"s3cr3t-v4lue")).await.unwrap();
    let path = record_path(dir.path(), "keys/req-7");
    let original = fs::read(&path).unwrap();
    for i in 0..original.len() {
        let mut tampered = original.clone();
        // XOR 1 never just changes the case of a hex digit (which would decode the same).
        tampered[i] ^= 0x01;
        fs::write(&path, &tampered).unwrap();
        match store.get("keys/req-7").await {
            Err(SecretError::Corrupt(message)) => {
                assert!(message.starts_with("keys/req-7: "), "{message}");
                assert!(!message.contains("s3cr3t"));
            }
            other => panic!("byte {i} flipped: {other:?}"),
        }
    }
    fs::write(&path, &original).unwrap();
    assert_eq!(store.get("keys/req-7").await.unwrap().expose(), b"s3cr3t-v4lue");
    fs::write(&path, b"").unwrap();
    assert!(matches!(store.get("keys/req-7").await, Err(SecretError::Corrupt(_))));
}

#[tokio::test]
async fn a_record_moved_to_another_name_does_not_open() {
    let (dir, store) = store();
    store.put("keys/alice", &secret(b"alice's key")).await.unwrap();
    store.put("keys/bob", &secret(b"bob's key")).await.unwrap();
    // Replace bob's record with alice's.
    fs::rename(record_path(dir.path(), "keys/alice"), record_path(dir.path(), "keys/bob")).unwrap();
    let err = store.get("keys/bob").await.unwrap_err();
    assert!(matches!(&err, SecretError::Corrupt(m) if m.starts_with("keys/bob: ")), "{err:?}");
    // Copy bob's (now alice's) record to a name that had none.
    fs::copy(record_path(dir.path(), "keys/bob"), record_path(dir.path(), "keys/carol")).unwrap();
    assert!(matches!(store.get("keys/carol").await, Err(SecretError::Corrupt(_))));
}

#[tokio::test]
async fn reopened_store_reads_what_was_written() {
    let (dir, store) = store();
    for i in 0..5 {
        store.put(&format!("keys/{i}"), &secret(format!("v{i}").as_bytes())).await.unwrap();
    }
    let id = store.current_master_key_id();
    drop(store);
    let reopened = LocalSecretStore::open(&secrets_dir(dir.path()), now()).unwrap();
    assert_eq!(reopened.current_master_key_id(), id);
    for i in 0..5 {
        let value = reopened.get(&format!("keys/{i}")).await.unwrap();
        assert_eq!(value.expose(), format!("v{i}").as_bytes());
    }
}

#[tokio::test]
async fn another_master_key_file_cannot_open_the_records() {
    let (dir, store) = store();
    store.put("keys/x", &secret(b"x")).await.unwrap();
    drop(store);
    let secrets = secrets_dir(dir.path());
    fs::remove_file(secrets.join("master.keys")).unwrap();
    let fresh = LocalSecretStore::open(&secrets, now()).unwrap();
    let err = fresh.get("keys/x").await.unwrap_err();
    assert!(matches!(&err, SecretError::Corrupt(m) if m.contains("master key")), "{err:?}");
}
