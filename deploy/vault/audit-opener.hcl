# The policy of whoever opens offboarding archives for an auditor (manage.py audit_archive_open),
# apart from the service: it may unwrap an archive's data key and nothing else. bootstrap.sh writes it
# as the ACL policy "audit-opener"; give its token to the operator for the time of one opening
# (vault token create -policy=audit-opener -no-default-policy -ttl=1h -use-limit=<archives to open>:
# each archive unwraps one data key).
# tests/vault/test_policy.py opens an archive with a token bound to it.

path "transit/decrypt/archive-audit" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext" = []
    "context"    = []
  }
}
