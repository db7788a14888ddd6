#!/usr/bin/env bash
# Prepare a Vault (or OpenBao) for the compliance gateway, through its HTTP API. Idempotent: a second
# run changes nothing.
#
#   VAULT_ADDR=https://vault.internal:8200 VAULT_TOKEN=<an operator's token> [VAULT_CACERT=ca.pem] \
#     deploy/vault/bootstrap.sh [options] > gateway.env
#
# In this order:
#   1. a file audit device (sys/audit/<name>): first, so that every later request is audited;
#   2. the Transit mount, and its config/keys disable_upsert;
#   3. the ACL policies gateway-service (gateway-service.hcl) and audit-opener (audit-opener.hcl);
#   4. the AppRole auth method and the service's role: short-lived tokens bound to gateway-service
#      alone, secret IDs with a TTL, optionally bound to networks;
#   5. the audit signing key and the archive keys (audit, backup), with the service's settings
#      (see keys.md).
# Prints VAULT_ROLE_ID=<role id> on stdout; progress goes to stderr. A secret ID is made only when
# asked (--new-secret-id FILE), written to FILE (created 0600, never over an existing file or link)
# or, with "-", to stdout (then stdout carries the secret: redirect it only to a file only you can
# read); never to stderr. --secret-id-only makes one and changes nothing else (the role keeps its
# CIDRs); its accessor goes to stderr, to destroy the previous secret ID by.
#
# Needs bash, curl and jq. The token goes to curl on its standard input, never on a command line.
# Tested against the Vault double of tests/doubles/vault.py (OpenBao v2.6.2's API), never against a
# real Vault: see docs/operations/keys.md.
set -euo pipefail
set +x # never traced, even under bash -x: a trace would show the token and any secret ID

usage() {
    cat >&2 <<'USAGE'
usage: bootstrap.sh [options]
  --mount PATH             Transit mount (default transit); VAULT_TRANSIT_MOUNT must name the same
  --approle PATH           AppRole auth mount (default approle)
  --role NAME              the service's AppRole role (default gateway-service)
  --token-ttl TTL          lifetime of the service's tokens (default 15m); it logs in again after
  --token-max-ttl TTL      (default 30m)
  --secret-id-ttl TTL      lifetime of a secret ID (default 720h; Vault caps it at the mount's max TTL)
  --secret-id-num-uses N   logins per secret ID (default 0: unlimited, for each process logs in again
                           whenever its token expires)
  --cidr CIDR[,CIDR...]    log in, and use tokens, only from these networks
  --audit-path NAME        audit device path (default gateway-file)
  --audit-file PATH        audit log file on the Vault server (default /var/log/vault/audit.log)
  --no-keys                do not create the audit signing key and the archive keys
  --no-audit-opener        do not write the audit-opener policy
  --new-secret-id FILE     make a secret ID for the role and write it to FILE (0600; "-" for stdout,
                           which then carries the secret)
  --secret-id-only         with --new-secret-id: only make the secret ID, change nothing else
USAGE
    exit 2
}

say() { printf '%s\n' "$*" >&2; }
die() { say "bootstrap.sh: $*"; exit 1; }

mount=transit
approle=approle
role=gateway-service
policy=gateway-service
opener_policy=audit-opener
token_ttl=15m
token_max_ttl=30m
secret_id_ttl=720h
secret_id_num_uses=0
cidrs=
audit_path=gateway-file
audit_file=/var/log/vault/audit.log
keys=yes
opener=yes
secret_id_file=
secret_id_only=no

while [ $# -gt 0 ]; do
    case $1 in
        --mount) mount=${2:?}; shift 2 ;;
        --approle) approle=${2:?}; shift 2 ;;
        --role) role=${2:?}; shift 2 ;;
        --token-ttl) token_ttl=${2:?}; shift 2 ;;
        --token-max-ttl) token_max_ttl=${2:?}; shift 2 ;;
        --secret-id-ttl) secret_id_ttl=${2:?}; shift 2 ;;
        --secret-id-num-uses) secret_id_num_uses=${2:?}; shift 2 ;;
        --cidr) cidrs=${2:?}; shift 2 ;;
        --audit-path) audit_path=${2:?}; shift 2 ;;
        --audit-file) audit_file=${2:?}; shift 2 ;;
        --no-keys) keys=no; shift ;;
        --no-audit-opener) opener=no; shift ;;
        --new-secret-id) secret_id_file=${2:?}; shift 2 ;;
        --secret-id-only) secret_id_only=yes; shift ;;
        *) usage ;;
    esac
done

: "${VAULT_ADDR:?set VAULT_ADDR}"
: "${VAULT_TOKEN:?set VAULT_TOKEN to an operator token, not the token of the service}"
case $VAULT_TOKEN in *[!A-Za-z0-9._-]*) die "VAULT_TOKEN holds characters a Vault token never has" ;; esac
for name in "$mount" "$approle" "$role" "$audit_path"; do
    case $name in "" | *[!A-Za-z0-9_.-]*) die "invalid name '$name'" ;; esac
done
case $secret_id_num_uses in "" | *[!0-9]*) die "--secret-id-num-uses takes a number" ;; esac
if [ -n "$secret_id_file" ] && [ "$secret_id_file" != - ] && { [ -e "$secret_id_file" ] || [ -L "$secret_id_file" ]; }; then
    die "$secret_id_file exists: remove it or name another file"
fi
if [ "$secret_id_only" = yes ] && [ -z "$secret_id_file" ]; then die "--secret-id-only needs --new-secret-id"; fi
command -v curl > /dev/null || die "needs curl"
command -v jq > /dev/null || die "needs jq"

here=$(cd "$(dirname "$0")" && pwd)
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=

# call METHOD PATH [JSON]: the answer's body in $work/out, its HTTP status in $status.
call() {
    local method=$1 path=$2
    local -a data=() ca=()
    if [ $# -ge 3 ]; then
        printf '%s' "$3" > "$work/body"
        data=(-H 'Content-Type: application/json' --data-binary "@$work/body")
    fi
    if [ -n "${VAULT_CACERT:-}" ]; then ca=(--cacert "$VAULT_CACERT"); fi
    status=$(printf 'header = "X-Vault-Token: %s"\n' "$VAULT_TOKEN" |
        curl -q -sS --config - -o "$work/out" -w '%{http_code}' -X "$method" \
            ${ca[@]+"${ca[@]}"} ${data[@]+"${data[@]}"} "${VAULT_ADDR%/}/v1/$path") ||
        die "cannot reach $VAULT_ADDR"
}

# expect WHAT STATUS...: stop, with Vault's error messages, unless the last call answered one of them.
expect() {
    local what=$1 wanted
    shift
    for wanted in "$@"; do [ "$status" = "$wanted" ] && return 0; done
    die "$what: HTTP $status: $(jq -r '(.errors // []) | join("; ")' "$work/out" 2> /dev/null || true)"
}

# write_policy NAME FILE: the policy file, "transit/" rewritten to the mount (its last newline kept),
# stored as NAME unless Vault holds that text already.
write_policy() {
    local name=$1 text
    text=$(sed "s#^path \"transit/#path \"$mount/#" "$here/$2"; printf x)
    text=${text%x}
    call GET "sys/policies/acl/$name"
    if [ "$status" = 200 ] && jq -e --arg p "$text" '.data.policy == $p' "$work/out" > /dev/null; then
        say "policy: $name is up to date"
        return
    fi
    call PUT "sys/policies/acl/$name" "$(jq -n --arg p "$text" '{policy: $p}')"
    expect "write the policy $name" 204 200
    say "policy: wrote $name"
}

audit_device() {
    call GET sys/audit
    expect "list the audit devices" 200
    if jq -e --arg p "$audit_path/" '.data[$p] != null' "$work/out" > /dev/null; then
        say "audit: $audit_path/ is enabled"
        return
    fi
    local others
    others=$(jq -r '.data // {} | keys | join(", ")' "$work/out")
    call PUT "sys/audit/$audit_path" "$(jq -n --arg f "$audit_file" \
        '{type: "file", description: "compliance gateway", options: {file_path: $f}}')"
    if [ "$status" = 204 ] || [ "$status" = 200 ]; then
        say "audit: enabled $audit_path/ (file $audit_file on the Vault server)"
    elif grep -q 'cannot enable audit device via API' "$work/out"; then
        # OpenBao 2.6 takes audit devices from its configuration only (unsafe_allow_api_audit_creation).
        [ -n "$others" ] || die "audit: no audit device is enabled, and this server enables them only from its configuration: declare one there (an audit \"file\" stanza) and run again"
        say "audit: this server takes audit devices from its configuration; $others enabled there"
    else
        expect "enable the audit device $audit_path/" 204
    fi
}

# enable TABLE PATH TYPE DESCRIPTION: a secrets engine (mounts) or auth method (auth), unless there.
enable() {
    local table=$1 path=$2 type=$3 description=$4 found
    call GET "sys/$table"
    expect "list sys/$table" 200
    found=$(jq -r --arg p "$path/" '.data[$p].type // empty' "$work/out")
    if [ "$found" = "$type" ]; then
        say "$table: $path/ is already $type"
        return
    fi
    [ -z "$found" ] || die "$table: $path/ is already a $found mount, not $type"
    call POST "sys/$table/$path" "$(jq -n --arg t "$type" --arg d "$description" '{type: $t, description: $d}')"
    expect "enable $type at $path/" 204 200
    say "$table: enabled $type at $path/"
}

service_role() {
    call POST "auth/$approle/role/$role" "$(jq -n \
        --arg policy "$policy" --arg ttl "$token_ttl" --arg max "$token_max_ttl" \
        --arg secret_ttl "$secret_id_ttl" --argjson uses "$secret_id_num_uses" --arg cidrs "$cidrs" \
        '{token_policies: $policy, token_no_default_policy: true, token_ttl: $ttl, token_max_ttl: $max,
          bind_secret_id: true, secret_id_ttl: $secret_ttl, secret_id_num_uses: $uses,
          secret_id_bound_cidrs: $cidrs, token_bound_cidrs: $cidrs}')"
    expect "write the role $role" 204 200
    say "approle: role $role (tokens: $policy only, ttl $token_ttl, max $token_max_ttl${cidrs:+, from $cidrs})"
}

# ensure_key NAME TYPE DERIVED: created with the service's settings unless it exists; refused if it
# exists with others (as the service refuses it); deletion turned off.
ensure_key() {
    local name=$1 type=$2 derived=$3
    call GET "$mount/keys/$name"
    if [ "$status" = 404 ]; then
        call POST "$mount/keys/$name" "$(jq -n --arg t "$type" --argjson d "$derived" \
            '{type: $t, exportable: false, allow_plaintext_backup: false} + (if $d then {derived: true} else {} end)')"
        expect "create the key $name" 200 204
        say "keys: created $name ($type)"
        call GET "$mount/keys/$name"
    fi
    expect "read the key $name" 200
    jq -e --arg t "$type" --argjson d "$derived" '.data | .type == $t and .derived == $d
        and .exportable == false and .allow_plaintext_backup == false and (.imported_key // false) == false' \
        "$work/out" > /dev/null ||
        die "keys: $name exists with other settings than the service's ($type, derived $derived, not exportable, no plaintext backup): the service refuses it"
    if ! jq -e '.data.deletion_allowed == false' "$work/out" > /dev/null; then
        call POST "$mount/keys/$name/config" '{"deletion_allowed": false}'
        expect "turn deletion of $name off" 200 204
    fi
    say "keys: $name is ready"
}

# field NAME: the string .data.NAME of the last answer; stops when it has none (never prints "null").
field() {
    jq -er --arg f "$1" '.data[$f] | strings' "$work/out" || die "Vault's answer has no $1"
}

new_secret_id() {
    local secret accessor
    call POST "auth/$approle/role/$role/secret-id" '{}'
    expect "make a secret ID" 200
    secret=$(field secret_id)
    accessor=$(field secret_id_accessor)
    if [ "$secret_id_file" = - ]; then
        printf 'VAULT_SECRET_ID=%s\n' "$secret"
    else
        # noclobber: created anew (O_EXCL), so never written through a link planted at the path
        (set -C; printf '%s\n' "$secret" > "$secret_id_file") || die "cannot create $secret_id_file"
        say "approle: a new secret ID is in $secret_id_file"
    fi
    say "approle: its accessor $accessor (destroy the previous secret ID by its accessor once every process uses this one)"
}

bootstrap() {
    audit_device
    enable mounts "$mount" transit "compliance gateway keys"
    call POST "$mount/config/keys" '{"disable_upsert": true}'
    expect "set disable_upsert" 200 204
    say "transit: disable_upsert on $mount/"
    write_policy "$policy" gateway-service.hcl
    if [ "$opener" = yes ]; then write_policy "$opener_policy" audit-opener.hcl; fi
    enable auth "$approle" approle "compliance gateway service"
    service_role
    if [ "$keys" = yes ]; then
        ensure_key signing-audit-checkpoints ed25519 false
        ensure_key archive-audit aes256-gcm96 true
        ensure_key archive-backup aes256-gcm96 true
    fi
}

if [ "$secret_id_only" = no ]; then bootstrap; fi
call GET "auth/$approle/role/$role/role-id"
expect "read the role id" 200
role_id=$(field role_id)
printf 'VAULT_ROLE_ID=%s\n' "$role_id"
if [ -n "$secret_id_file" ]; then new_secret_id; fi
