#!/usr/bin/env bash
# The research walkthrough against a running service, step by step: sign-in, a study, a participant,
# consent, observations, the researcher's redacted view, withdrawal, a second factor, a de-identified
# export (with its recipient, purpose and a compliance officer's determination) and the participant's
# accounting of disclosures.
#
# Run it after `make run` (which creates the demo users and prints their password):
#
#   scripts/demo.sh
#
# Settings (environment):
#   BASE_URL        where the service listens (default http://127.0.0.1:8000)
#   COMMUNITY       the demo community (default alpha); its host is COMMUNITY.localhost and its users
#                   ROLE@COMMUNITY.example, as `manage.py seed_demo` creates them
#   HOST            the Host header (default $COMMUNITY.localhost)
#   DEMO_PASSWORD   the demo password (default: read from LOCAL_STATE_DIR/demo-password, as seed_demo writes it)
#   LOCAL_STATE_DIR the service's local state directory (default ~/.local/state/compliance-gateway)
#   DEMO_RUN        a suffix that keeps this run's protocol number and MRN unique (default: the time)
#   EXPORT_TIMEOUT  seconds to wait for the worker to build the export (default 60)
#
# The investigator's and the compliance officer's second factors are enrolled on the first run; their
# secrets are kept (mode 0600) in LOCAL_STATE_DIR/demo-totp-<email>, so that later runs can sign in with them.
# Exports suppress every group of fewer than DEIDENTIFIED_EXPORT_MIN_CELL people (11 by default, never below 2
# from the environment): against `make run` this one-person study's file holds no record, and its manifest
# counts the record as suppressed. The walkthrough's test serves the app with k = 1 to show a record.
# Needs bash, curl and python3 (standard library only). Exits non-zero on any unexpected answer.
set -euo pipefail

BASE_URL=${BASE_URL:-http://127.0.0.1:8000}
BASE_URL=${BASE_URL%/}
COMMUNITY=${COMMUNITY:-alpha}
HOST=${HOST:-$COMMUNITY.localhost}
STATE=${LOCAL_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/compliance-gateway}
if [ -z "${DEMO_PASSWORD:-}" ]; then
  if [ ! -r "$STATE/demo-password" ]; then
    echo "error: no demo password: run \`make run\` first, or set DEMO_PASSWORD" >&2
    exit 1
  fi
  DEMO_PASSWORD=$(<"$STATE/demo-password")
fi
RUN=${DEMO_RUN:-$(date +%s)}
EXPORT_TIMEOUT=${EXPORT_TIMEOUT:-60}
API=$BASE_URL/api/v1
PI_EMAIL=principal_investigator@$COMMUNITY.example
CO_EMAIL=coordinator@$COMMUNITY.example
RE_EMAIL=researcher@$COMMUNITY.example
OFFICER_EMAIL=compliance_officer@$COMMUNITY.example
TOTP_FILE=$STATE/demo-totp-$PI_EMAIL

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BODY=$WORK/body
STEP=0

step() {
  STEP=$((STEP + 1))
  printf '\n==> %d. %s\n' "$STEP" "$*"
}

say() {
  printf '    %s\n' "$*"
}

fail() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# py EXPRESSION: evaluate a Python expression over the last response body, parsed as JSON (as `d`).
py() {
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
value = eval(sys.argv[2], {"d": d})
print(value if isinstance(value, str) else json.dumps(value))
' "$BODY" "$1"
}

# call EXPECTED_STATUS METHOD PATH TOKEN [JSON_BODY [HEADER]]: one request to the community's host; the answer
# lands in $BODY. Any other status ends the script, showing the answer.
call() {
  local expected=$1 method=$2 path=$3 token=$4 data=${5:-} header=${6:-}
  local args=(--silent --show-error --output "$BODY" --write-out '%{http_code}' --request "$method"
    --header "Host: $HOST")
  if [ -n "$token" ]; then args+=(--header "Authorization: Bearer $token"); fi
  if [ -n "$header" ]; then args+=(--header "$header"); fi
  if [ -n "$data" ]; then args+=(--header 'Content-Type: application/json' --data "$data"); fi
  local status
  status=$(curl "${args[@]}" "$API$path") || fail "curl could not reach $API$path"
  if [ "$status" != "$expected" ]; then
    printf 'error: %s %s answered %s, expected %s:\n' "$method" "$path" "$status" "$expected" >&2
    cat "$BODY" >&2
    echo >&2
    exit 1
  fi
  say "$method $path -> $status"
}

# second_factor EMAIL: sign in with a one-time code and print the access token; on the first run, sign in with
# the password, enrol TOTP and keep its secret (mode 0600) in LOCAL_STATE_DIR/demo-totp-EMAIL.
second_factor() {
  local email=$1 file=$STATE/demo-totp-$1 access secret
  if [ -r "$file" ]; then
    token_with_totp "$email" "$(<"$file")" 30
    return
  fi
  access=$(token "$email")
  call 201 POST /auth/mfa/totp "$access" >&2
  secret=$(python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)["secret"][0])' \
    "$(py 'd["provisioning_uri"]')")
  (umask 077 && mkdir -p "$STATE" && printf '%s\n' "$secret" >"$file")
  call 200 POST /auth/mfa/totp/confirm "$access" "{\"code\": \"$(totp "$secret" -30)\"}" >&2
  token_with_totp "$email" "$secret" 0 30
}

# token EMAIL [OTP]: sign in on the community's host and print the access token.
token() {
  local otp=${2:+, \"otp\": \"$2\"}
  call 200 POST /auth/token "" "{\"email\": \"$1\", \"password\": \"$DEMO_PASSWORD\"$otp}" >&2
  py 'd["access"]'
}

# totp SECRET OFFSET_SECONDS: the RFC 6238 code (SHA-1, 6 digits, 30 s) at now + offset.
totp() {
  python3 -c '
import base64, hashlib, hmac, struct, sys, time
secret = sys.argv[1].upper()
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
digest = hmac.new(key, struct.pack(">Q", int((time.time() + int(sys.argv[2])) // 30)), hashlib.sha1).digest()
offset = digest[-1] & 15
print("%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000))
' "$1" "$2"
}

# token_with_totp EMAIL SECRET OFFSET...: sign in with the code at each offset in turn (a code is accepted
# once, and only if newer than the last one used); if all are refused, wait for the next 30 s step once.
token_with_totp() {
  local email=$1 secret=$2 offset status
  shift 2
  for attempt in 1 2; do
    for offset in "$@"; do
      status=$(curl --silent --show-error --output "$BODY" --write-out '%{http_code}' --request POST \
        --header "Host: $HOST" --header 'Content-Type: application/json' \
        --data "{\"email\": \"$email\", \"password\": \"$DEMO_PASSWORD\", \"otp\": \"$(totp "$secret" "$offset")\"}" \
        "$API/auth/token") || fail "curl could not reach $API/auth/token"
      if [ "$status" = 200 ]; then
        say "POST /auth/token (with a one-time code) -> 200" >&2
        py 'd["access"]'
        return 0
      fi
      [ "$status" = 401 ] || fail "POST /auth/token answered $status: $(cat "$BODY")"
    done
    [ "$attempt" = 1 ] && sleep $((30 - $(date +%s) % 30 + 1))
  done
  fail "$email: the one-time codes from $TOTP_FILE were refused"
}

step "The service answers (platform host, no token)"
status=$(curl --silent --show-error --output "$BODY" --write-out '%{http_code}' "$BASE_URL/health/live") ||
  fail "nothing answers at $BASE_URL: start it with \`make run\`"
[ "$status" = 200 ] || fail "GET /health/live answered $status"
say "GET /health/live -> 200"

step "Sign in as the principal investigator, the coordinator and the researcher of $COMMUNITY"
CO=$(token "$CO_EMAIL")
RE=$(token "$RE_EMAIL")
if [ -r "$TOTP_FILE" ]; then
  SECRET=$(<"$TOTP_FILE")
  PI=$(token_with_totp "$PI_EMAIL" "$SECRET" 30)
  say "the investigator signed in with the second factor enrolled by an earlier run"
else
  PI=$(token "$PI_EMAIL")
fi
call 200 GET /me "$PI"
say "roles: $(py 'd["roles"]'), amr: $(py 'd["amr"]')"

step "The investigator creates an active study"
call 201 POST /studies/ "$PI" "{\"title\": \"Sleep and memory\", \"protocol_number\": \"SLP-$RUN\",
  \"irb_approval_number\": \"IRB-7\", \"irb_approval_date\": \"2026-01-15\", \"status\": \"active\"}"
STUDY=$(py 'd["id"]')
say "study $STUDY ($(py 'd["protocol_number"]'), $(py 'd["status"]'))"

step "The coordinator enrols a participant (PHI encrypted in the database)"
call 201 POST /participants/ "$CO" "{\"study\": \"$STUDY\", \"given_name\": \"Ada\", \"family_name\": \"Lovelace\",
  \"date_of_birth\": \"1950-12-10\", \"mrn\": \"MRN-$RUN\", \"postal_code\": \"10001\", \"state\": \"NY\"}"
P=$(py 'd["id"]')
say "participant $P, pseudonym $(py 'd["pseudonym"]')"

step "The coordinator records her consent to research use"
call 201 POST "/participants/$P/consents/" "$CO" \
  '{"scopes": ["research_use"], "form_version": "v3", "signed_at": "2026-02-01T10:00:00Z"}'
C=$(py 'd["id"]')
say "consent $C, scopes $(py 'd["scopes"]')"

step "The coordinator records two heart-rate observations"
for value in 72 68; do
  call 201 POST /observations/ "$CO" "{\"participant\": \"$P\", \"code_system\": \"http://loinc.org\",
    \"code\": \"8867-4\", \"display\": \"Heart rate\", \"value\": $value, \"unit\": \"/min\",
    \"effective_date\": \"2026-03-02\"}"
done

step "The investigator reads her record: PHI, because the consent covers research_use"
call 200 GET "/participants/$P/" "$PI"
[ "$(py 'd["given_name"]')" = Ada ] || fail "the investigator did not get the participant's name"
say "given_name: $(py 'd["given_name"]'), mrn: $(py 'd["mrn"]'), date_of_birth: $(py 'd["date_of_birth"]')"

step "The researcher reads the same record: the PHI fields are redacted"
call 200 GET "/participants/$P/" "$RE"
[ "$(py 'd["given_name"]')" = null ] || fail "the researcher's view was not redacted"
say "given_name: $(py 'd["given_name"]'), mrn: $(py 'd["mrn"]'), pseudonym: $(py 'd["pseudonym"]')"

step "The investigator finds her by exact MRN (blind index) and lists her observations"
# The MRN goes in the body of a search, never in a URL (URLs end up in access logs).
call 200 POST /participants/search/ "$PI" "{\"mrn\": \"MRN-$RUN\"}"
[ "$(py 'len(d["results"])')" = 1 ] || fail "the MRN search did not find exactly one participant"
say "found $(py 'd["results"][0]["pseudonym"]')"
call 200 GET "/observations/?participant=$P" "$PI"
[ "$(py 'len(d["results"])')" = 2 ] || fail "expected two observations"
say "values: $(py '[o["value"] for o in d["results"]]')"

step "The researcher may not search by MRN: a problem document says why"
call 400 POST /participants/search/ "$RE" "{\"mrn\": \"MRN-$RUN\"}"
say "code: $(py 'd["code"]'), detail: $(py 'd["detail"]')"

step "The coordinator withdraws the consent; the investigator's read is now refused, with the reason"
call 200 POST "/participants/$P/consents/$C/withdraw/" "$CO" '{}'
say "withdrawn_at: $(py 'd["withdrawn_at"]')"
call 403 GET "/participants/$P/" "$PI"
[ "$(py 'd["code"]')" = consent_not_covering_purpose ] || fail "expected consent_not_covering_purpose"
say "code: $(py 'd["code"]'), decision_id: $(py 'd["decision_id"]')"

step "Nor through an update, whose answer would echo the record: it is decided as the read"
call 403 PATCH "/participants/$P/" "$PI" '{}' 'If-Match: *'
[ "$(py 'd["code"]')" = consent_not_covering_purpose ] || fail "an update answered outside the consent"
say "code: $(py 'd["code"]')"

step "A second participant whose consent stays, with an observation"
call 201 POST /participants/ "$CO" "{\"study\": \"$STUDY\", \"given_name\": \"Grace\", \"family_name\": \"Hopper\",
  \"date_of_birth\": \"1930-12-09\", \"postal_code\": \"05501\", \"state\": \"VT\"}"
G=$(py 'd["id"]')
call 201 POST "/participants/$G/consents/" "$CO" \
  '{"scopes": ["research_use"], "form_version": "v3", "signed_at": "2026-02-01T10:00:00Z"}'
call 201 POST /observations/ "$CO" "{\"participant\": \"$G\", \"code_system\": \"http://loinc.org\",
  \"code\": \"8867-4\", \"value\": 64, \"unit\": \"/min\", \"effective_date\": \"2026-03-03\",
  \"note\": \"Grace felt fine\"}"

EXPORT_REQUEST="{\"study\": \"$STUDY\", \"format\": \"csv\",
  \"recipient\": {\"name\": \"Dana Reviewer\", \"organisation\": \"Example University Sleep Lab\"},
  \"purpose\": \"Secondary analysis of sleep and memory under the lab's data use agreement.\"}"

step "Exports need a recent second factor: the investigator adds one and signs in with it"
if [ -r "$TOTP_FILE" ]; then
  say "already enrolled by an earlier run (secret in $TOTP_FILE)"
else
  call 403 POST /exports/ "$PI" "$EXPORT_REQUEST"
  say "without it: $(py 'd["code"]')"
  call 201 POST /auth/mfa/totp "$PI"
  SECRET=$(python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)["secret"][0])' \
    "$(py 'd["provisioning_uri"]')")
  (umask 077 && mkdir -p "$STATE" && printf '%s\n' "$SECRET" >"$TOTP_FILE")
  call 200 POST /auth/mfa/totp/confirm "$PI" "{\"code\": \"$(totp "$SECRET" -30)\"}"
  say "$(py 'len(d["recovery_codes"])') recovery codes issued (shown once)"
  PI=$(token_with_totp "$PI_EMAIL" "$SECRET" 0 30)
fi
call 200 GET /me "$PI"
say "amr: $(py 'd["amr"]')"

step "The investigator asks for the study's de-identified dataset, naming its recipient and purpose"
call 202 POST /exports/ "$PI" "$EXPORT_REQUEST"
X=$(py 'd["id"]')
say "export $X is $(py 'd["status"]')"
deadline=$((SECONDS + EXPORT_TIMEOUT))
while :; do
  call 200 GET "/exports/$X/" "$PI" >/dev/null
  export_status=$(py 'd["status"]')
  [ "$export_status" = pending ] || break
  [ "$SECONDS" -lt "$deadline" ] || fail "the export is still pending after ${EXPORT_TIMEOUT}s: is a worker running?"
  sleep 0.5
done
[ "$export_status" = ready ] || fail "the export is $export_status: $(py 'd.get("error")')"
say "export $X is ready: participants $(py 'd["participant_count"]'), observations $(py 'd["observation_count"]')"
say "(only the second participant: the first one's consent was withdrawn)"

step "Its manifest says how each of the 18 Safe Harbor identifiers and the small cells were handled"
call 200 GET "/exports/$X/manifest/" "$PI"
SHA256=$(py 'd["sha256"]')
say "method: $(py 'd["method"]')"
say "identifier kinds listed: $(py 'len(d["identifiers"])'), sha256: $SHA256"
say "small cells: k = $(py 'd["small_cells"]["min_cell"]'),\
 records suppressed: $(py 'd["small_cells"]["records_suppressed"]')"
say "ZIP3 table: $(py 'd["zip3_table"]["source"]')"

step "The file waits for a compliance officer's determination of no actual knowledge"
call 409 GET "/exports/$X/download/" "$PI"
[ "$(py 'd["code"]')" = determination_required ] || fail "the download was not held for the determination"
say "code: $(py 'd["code"]')"

step "The compliance officer, with a second factor, reviews the manifest and signs off the determination"
OFFICER=$(second_factor "$OFFICER_EMAIL")
call 200 GET "/exports/$X/determination/" "$OFFICER"
MANIFEST_SHA256=$(py 'd["export"]["manifest_sha256"]')
say "recipient: $(py 'd["export"]["recipient"]["name"]') ($(py 'd["export"]["recipient"]["organisation"]'))"
STATEMENT="I have no actual knowledge that this file could identify anyone, alone or with other information."
call 201 POST "/exports/$X/determination/" "$OFFICER" \
  "{\"statement\": \"$STATEMENT\", \"manifest_sha256\": \"$MANIFEST_SHA256\"}"
say "determined by $(py 'd["determination"]["determined_by"]') for manifest $(py 'd["determination"]["manifest_sha256"]')"

step "The download matches the manifest's SHA-256"
call 200 GET "/exports/$X/download/" "$PI"
[ "$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$BODY")" = \
  "$SHA256" ] || fail "the file's SHA-256 differs from the manifest's"
sed 's/^/    | /' "$BODY"

step "The compliance officer answers the first participant's accounting of disclosures"
call 200 GET "/participants/$P/disclosures/" "$OFFICER"
say "$(py 'd["count"]') disclosures of $(py 'd["participant"]'):"
python3 -c '
import json, sys
for entry in json.load(open(sys.argv[1], encoding="utf-8"))["disclosures"]:
    print("      %s  %-40s %s (%s)" % (entry["date"], entry["recipient"]["email"], entry["description"], entry["purpose"]))
' "$BODY"

printf '\ndemo finished: %d steps, every answer as expected\n' "$STEP"
