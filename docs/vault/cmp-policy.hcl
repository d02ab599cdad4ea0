# The Vault policy CMP's own token (or AppRole) needs. The tests run CMP with exactly this.
# Adjust the mount ("pki"), the KV mount ("secret") and prefix ("cmp") to your configuration.

# Vault PKI adapter: sign with any role of the mount, revoke, read roles and the issuer chain.
path "pki/sign/*" {
  capabilities = ["update"]
}
path "pki/revoke" {
  capabilities = ["update"]
}
path "pki/roles/*" {
  capabilities = ["read"]
}
path "pki/cert/ca_chain" {
  capabilities = ["read"]
}

# secrets.backend = "vault": private keys and credentials under secret/cmp/.
path "secret/data/cmp/*" {
  capabilities = ["create", "read", "update"]
}
# Only a revoke with purge_key destroys a key (every version).
path "secret/metadata/cmp/*" {
  capabilities = ["delete"]
}

# Staying logged in.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Optional: Vault tokens for agents, through the token role "cmp-agent" (see docs/VAULT.md).
path "sys/policies/acl/cmp-agent-*" {
  capabilities = ["create", "update"]
}
path "auth/token/create/cmp-agent" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
