# The compliance gateway's Vault policy: exactly the calls vault/providers/transit.py makes, with the
# defaults (Transit mounted at "transit/", VAULT_KEY_PREFIX "community-", AUDIT_SIGNING_KEY_NAME
# "audit-checkpoints", AUDIT_ARCHIVE_KEY_NAME "audit", BACKUP_KEY_NAME "backup"). bootstrap.sh writes
# it as the ACL policy "gateway-service" (rewriting "transit/" for --mount); tests/vault/test_policy.py
# runs every provider call through it in the Vault double and fails when a grant is missing or unused.
#
# How Vault reads it (vault/policy/policy.go and acl.go at OpenBao v2.6.2):
# - a trailing "*" matches the rest of the path, slashes included, so "keys/community-*" also covers
#   "keys/community-alpha/config", ".../rotate" and ".../trim"; a "*" anywhere else is a literal;
# - these Transit paths have no existence check (only encrypt/ has one), so every POST is "update",
#   creating a key too; "create" is never asked for here;
# - allowed_parameters lists every parameter a request may carry (any other is refused, 403); a
#   number in a JSON body never equals a listed value, so numeric parameters list [] (any value).
#
# sys/health and auth/approle/login need no grant. No path grants datakey/plaintext, export, backup,
# restore or hmac, and only community keys may be deleted. The name globs below do reach every
# sub-path of a key (import, import_version, set-certificate, csr, soft-delete, soft-delete-restore,
# trim): allowed_parameters refuses import, import_version and set-certificate (they need ciphertext
# or certificate_chain) and a signing key's trim (min_available_version), but an empty-body csr or
# soft-delete-restore, and a community key's DELETE .../soft-delete, pass. A deny under a name glob
# cannot carve them out ("keys/+/csr" loses to "keys/community-*": acl.go@v2.6.2 prefers the rule
# whose first wildcard comes later), so they are denied exactly where the name is fixed: the
# platform's signing key. docs/operations/keys.md says what the service's token can still do.

# configure_mount (manage.py configure_vault): disable_upsert may only be turned on.
path "transit/config/keys" {
  capabilities = ["update"]
  allowed_parameters = {
    "disable_upsert" = [true]
  }
}

# A community's key, community-<slug>: create (POST with its settings), read (the settings checked
# after creating or adopting it; the latest version after a rotate Vault answered 204), config
# (deletion_allowed off when adopted, on at offboarding; min_encryption_version and
# min_decryption_version when retiring versions), rotate, trim (retired versions deleted for good),
# delete (crypto-shredding at offboarding).
path "transit/keys/community-*" {
  capabilities = ["read", "update", "delete"]
  allowed_parameters = {
    "type"                   = ["aes256-gcm96"]
    "derived"                = [true]
    "exportable"             = [false]
    "allow_plaintext_backup" = [false]
    "deletion_allowed"       = []
    "min_encryption_version" = []
    "min_decryption_version" = []
    "min_available_version"  = []
  }
}

# A new data or blind-index key, wrapped by the community's key (never the plaintext form).
path "transit/datakey/wrapped/community-*" {
  capabilities = ["update"]
  allowed_parameters = {
    "context" = []
    "bits"    = []
  }
}

# Unwrapping a community's data key into process memory.
path "transit/decrypt/community-*" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext" = []
    "context"    = []
  }
}

# The audit signing keys: signing-audit-checkpoints (the platform's log) and
# signing-audit-checkpoints-<slug> (each community's). Read (public keys, settings checked), create
# when missing, config (deletion_allowed off when adopted), rotate. Never deleted, never trimmed.
path "transit/keys/signing-audit-checkpoints*" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "type"                   = ["ed25519"]
    "exportable"             = [false]
    "allow_plaintext_backup" = [false]
    "deletion_allowed"       = [false]
  }
}

# The platform's signing key: the sub-paths the glob above reaches and nothing uses, refused.
path "transit/keys/signing-audit-checkpoints/csr" { capabilities = ["deny"] }
path "transit/keys/signing-audit-checkpoints/set-certificate" { capabilities = ["deny"] }
path "transit/keys/signing-audit-checkpoints/import" { capabilities = ["deny"] }
path "transit/keys/signing-audit-checkpoints/import_version" { capabilities = ["deny"] }
path "transit/keys/signing-audit-checkpoints/soft-delete" { capabilities = ["deny"] }
path "transit/keys/signing-audit-checkpoints/soft-delete-restore" { capabilities = ["deny"] }
path "transit/keys/signing-audit-checkpoints/trim" { capabilities = ["deny"] }

# Signing checkpoints, purge statements and export manifests.
path "transit/sign/signing-audit-checkpoints*" {
  capabilities = ["update"]
  allowed_parameters = {
    "input" = []
  }
}

# The archive key, archive-audit: read (settings checked), create when missing. Never deleted.
path "transit/keys/archive-audit" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "type"                   = ["aes256-gcm96"]
    "derived"                = [true]
    "exportable"             = [false]
    "allow_plaintext_backup" = [false]
  }
}

# deletion_allowed off, when an archive key is adopted with deletion allowed.
path "transit/keys/archive-audit/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = [false]
  }
}

# A new data key for an offboarding archive, wrapped by the archive key (the community as context).
path "transit/datakey/wrapped/archive-audit" {
  capabilities = ["update"]
  allowed_parameters = {
    "context" = []
    "bits"    = []
  }
}

# Unwrapping an archive's data key: sealing, verifying and opening an archive.
path "transit/decrypt/archive-audit" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext" = []
    "context"    = []
  }
}

# The backup key, archive-backup (a second archive key): read (settings checked), create when
# missing. Never deleted.
path "transit/keys/archive-backup" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "type"                   = ["aes256-gcm96"]
    "derived"                = [true]
    "exportable"             = [false]
    "allow_plaintext_backup" = [false]
  }
}

# deletion_allowed off, when the backup key is adopted with deletion allowed.
path "transit/keys/archive-backup/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = [false]
  }
}

# A new data key for a backup object, wrapped by the backup key (the object's name as context).
path "transit/datakey/wrapped/archive-backup" {
  capabilities = ["update"]
  allowed_parameters = {
    "context" = []
    "bits"    = []
  }
}

# Unwrapping a backup object's data key: sealing it and reading it back (restore, restore test).
path "transit/decrypt/archive-backup" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext" = []
    "context"    = []
  }
}
