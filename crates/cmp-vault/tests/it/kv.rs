//! The secret store on KV v2: the same promises as the local store.

use cmp_secrets::{SecretBytes, SecretError, SecretStore};
use cmp_testkit::openbao::OpenBao;
use cmp_vault::VaultKvStore;

use super::client_with_token;

#[tokio::test]
async fn secrets_round_trip_as_versions_and_are_destroyed_only_on_delete() {
    let bao = OpenBao::start().await;
    let store = VaultKvStore::new(client_with_token(&bao, "root"), "secret", "cmp").unwrap();
    store.check().await.unwrap();
    assert_eq!(store.backend(), "vault");

    let key = SecretBytes::new((0u8..=255).collect::<Vec<u8>>());
    store.put("keys/request-1", &key).await.unwrap();
    assert_eq!(store.get("keys/request-1").await.unwrap().expose(), key.expose());
    store.put("keys/request-1", &SecretBytes::new(b"second".to_vec())).await.unwrap();
    assert_eq!(store.get("keys/request-1").await.unwrap().expose(), b"second");
    let metadata = bao.api("GET", "secret/metadata/cmp/keys/request-1", None).await;
    assert_eq!(metadata["data"]["current_version"], 2, "every put is a version");

    store.delete("keys/request-1").await.unwrap();
    assert!(matches!(store.get("keys/request-1").await, Err(SecretError::NotFound(_))));
    let (status, _) = bao.try_api("GET", "secret/metadata/cmp/keys/request-1", None).await;
    assert_eq!(status, 404, "delete destroys every version");
    store.delete("keys/request-1").await.unwrap();
}

#[tokio::test]
async fn bad_names_and_a_sealed_vault_are_clear_errors() {
    let bao = OpenBao::start().await;
    let store = VaultKvStore::new(client_with_token(&bao, "root"), "secret", "cmp").unwrap();
    for name in ["", "../sys/policy", "/abs", "UPPER"] {
        let err = store.put(name, &SecretBytes::new(b"x".to_vec())).await.unwrap_err();
        assert!(matches!(err, SecretError::InvalidName(_)), "{name}: {err:?}");
    }
    assert!(VaultKvStore::new(client_with_token(&bao, "root"), "secret", "a/../b").is_err());

    store.put("keys/kept", &SecretBytes::new(b"kept".to_vec())).await.unwrap();
    bao.seal().await;
    let err = store.put("keys/other", &SecretBytes::new(b"x".to_vec())).await.unwrap_err();
    assert!(matches!(&err, SecretError::Unavailable(why) if why.contains("sealed")), "{err:?}");
    assert!(store.check().await.is_err());
    bao.unseal().await;
    assert_eq!(store.get("keys/kept").await.unwrap().expose(), b"kept");
    assert!(matches!(store.get("keys/other").await, Err(SecretError::NotFound(_))));
}
