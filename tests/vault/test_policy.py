"""The shipped Vault policy grants exactly what the provider uses, and the double enforces it as Vault's ACL does.

``deploy/vault/gateway-service.hcl`` is loaded into the Vault double, whose
ACL follows OpenBao v2.6.2's ``vault/policy`` (see
:mod:`tests.doubles.vault_acl`). Every provider call through it is granted,
every grant is used by one, and removing any path block refuses the service.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import override_settings

from operations.backups.store import BackupStore
from security.audit.archives import audit_archive_create, audit_archive_open
from tests.doubles.vault import SHIPPED_POLICY, TOKEN, VaultState, as_root, bootstrap, running_vault
from tests.doubles.vault_acl import ACL, Decision, PolicyError, parse_policy
from tests.support.offboarding import community_with_a_trail
from tests.support.vault_policy import (
    SESSION,
    PolicyUsage,
    allowed_parameters,
    credentials,
    denying,
    granting,
    grants,
    shipped_policy,
)
from tests.vault.every_call import every_vault_call
from vault.errors import KeyServiceUnavailable
from vault.providers import VaultTransitProvider

OPENER_POLICY = SHIPPED_POLICY.with_name("audit-opener.hcl")


def decide(policy: str, path: str, capability: str = "update", data: dict[str, Any] | None = None) -> Decision:
    return ACL([parse_policy("p", policy)]).decide(path, capability, data or {})


def without_path(text: str, written: str) -> str:
    """The policy text with the block of ``path "<written>"`` cut out (its braces matched)."""
    start = text.index(f'path "{written}"')
    depth = 0
    for end in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[:start] + text[end + 1 :]
    raise ValueError(f"the block of {written} does not close")


def drive() -> tuple[PolicyUsage, VaultState]:
    """Every provider call against a double bootstrapped with the shipped policy (the session hears it too)."""
    usage = PolicyUsage()
    with running_vault(bootstrapped=False) as (address, state):
        service = bootstrap(state)
        state.observers += [usage.record, SESSION.record]
        every_vault_call(address, state, service)
    return usage, state


# --- the shipped policy -------------------------------------------------------------------------------


def test_the_policy_grants_exactly_what_the_provider_uses_and_nothing_more() -> None:
    usage, state = drive()

    policy = shipped_policy()
    assert usage.refusals() == []
    assert usage.granted == grants(policy)  # both ways: nothing refused, nothing granted that no call uses
    assert usage.parameters == allowed_parameters(policy)  # every allowed parameter is one a call sends
    assert state.ignored == []  # and Vault knows every field the provider sends


@pytest.mark.parametrize("written", [rule.written for rule in granting(shipped_policy())])
def test_removing_any_path_from_the_policy_refuses_the_service(written: str) -> None:
    text = without_path(SHIPPED_POLICY.read_text(encoding="utf-8"), written)
    removed = next(rule for rule in shipped_policy().rules if rule.written == written)
    assert f'path "{written}"' not in text

    usage = PolicyUsage()
    with running_vault(bootstrapped=False) as (address, state):
        service = bootstrap(state, policy_text=text)
        state.observers.append(usage.record)
        with pytest.raises(KeyServiceUnavailable):
            every_vault_call(address, state, service)

    refused = [decision.path for decision in usage.denied]
    assert refused, "nothing was refused"
    assert all(path.startswith(removed.path) if removed.is_prefix else path == removed.path for path in refused)


def test_the_policy_refuses_what_the_service_must_never_do() -> None:
    with running_vault() as (address, state):
        token = credentials(state).token
        as_root(state, "POST", "transit/keys/community-alpha", {"type": "aes256-gcm96", "derived": True})
        as_root(state, "POST", "transit/keys/archive-audit", {"type": "aes256-gcm96", "derived": True})

        def status(method: str, path: str, body: dict[str, Any] | None = None) -> int:
            response = requests.request(
                method, f"{address}/v1/{path}", json=body, headers={"X-Vault-Token": token}, timeout=5
            )
            return response.status_code

        assert status("POST", "transit/datakey/plaintext/community-alpha", {"context": "YWxwaGE="}) == 403
        assert status("GET", "transit/export/encryption-key/community-alpha") == 403
        assert status("GET", "transit/backup/community-alpha") == 403
        assert status("POST", "transit/keys/community-alpha/config", {"exportable": True}) == 403
        assert status("POST", "transit/keys/community-alpha/config", {"allow_plaintext_backup": True}) == 403
        assert status("POST", "transit/keys/community-beta", {"type": "aes256-gcm96", "exportable": True}) == 403
        assert status("POST", "transit/keys/community-beta", {"type": "aes256-gcm96", "derived": False}) == 403
        assert status("DELETE", "transit/keys/archive-audit") == 403
        assert status("POST", "transit/keys/archive-audit/config", {"deletion_allowed": True}) == 403
        assert status("POST", "transit/keys/signing-audit-checkpoints/config", {"deletion_allowed": True}) == 403
        assert status("POST", "transit/keys/signing-audit-checkpoints/trim", {"min_available_version": 1}) == 403
        assert status("POST", "transit/config/keys", {"disable_upsert": False}) == 403
        assert status("POST", "sys/mounts/kv", {"type": "kv"}) == 403
        assert status("POST", "transit/keys/community-alpha/config", {"deletion_allowed": True}) == 200


# Every granting rule of the shipped policy, complete: the path as written, its capabilities, and each
# allowed parameter with its values (() = any value). A widened glob, a capability or a value let loose
# fails here, and the probes below are made from this table, not from the HCL under test.
GOLDEN: dict[str, tuple[frozenset[str], dict[str, tuple[Any, ...]]]] = {
    "transit/config/keys": (frozenset({"update"}), {"disable_upsert": (True,)}),
    "transit/keys/community-*": (
        frozenset({"read", "update", "delete"}),
        {
            "type": ("aes256-gcm96",),
            "derived": (True,),
            "exportable": (False,),
            "allow_plaintext_backup": (False,),
            "deletion_allowed": (),
            "min_encryption_version": (),
            "min_decryption_version": (),
            "min_available_version": (),
        },
    ),
    "transit/datakey/wrapped/community-*": (frozenset({"update"}), {"context": (), "bits": ()}),
    "transit/decrypt/community-*": (frozenset({"update"}), {"ciphertext": (), "context": ()}),
    "transit/keys/signing-audit-checkpoints*": (
        frozenset({"read", "update"}),
        {
            "type": ("ed25519",),
            "exportable": (False,),
            "allow_plaintext_backup": (False,),
            "deletion_allowed": (False,),
        },
    ),
    "transit/sign/signing-audit-checkpoints*": (frozenset({"update"}), {"input": ()}),
    "transit/keys/archive-audit": (
        frozenset({"read", "update"}),
        {"type": ("aes256-gcm96",), "derived": (True,), "exportable": (False,), "allow_plaintext_backup": (False,)},
    ),
    "transit/keys/archive-audit/config": (frozenset({"update"}), {"deletion_allowed": (False,)}),
    "transit/datakey/wrapped/archive-audit": (frozenset({"update"}), {"context": (), "bits": ()}),
    "transit/decrypt/archive-audit": (frozenset({"update"}), {"ciphertext": (), "context": ()}),
    "transit/keys/archive-backup": (
        frozenset({"read", "update"}),
        {"type": ("aes256-gcm96",), "derived": (True,), "exportable": (False,), "allow_plaintext_backup": (False,)},
    ),
    "transit/keys/archive-backup/config": (frozenset({"update"}), {"deletion_allowed": (False,)}),
    "transit/datakey/wrapped/archive-backup": (frozenset({"update"}), {"context": (), "bits": ()}),
    "transit/decrypt/archive-backup": (frozenset({"update"}), {"ciphertext": (), "context": ()}),
}
SIGNING_SUB_PATHS = ("csr", "set-certificate", "import", "import_version", "soft-delete", "soft-delete-restore", "trim")


def test_every_rule_of_the_policy_is_pinned_whole() -> None:
    policy = shipped_policy()

    found = {
        rule.written: (
            rule.capabilities,
            {name: tuple(values) for name, values in (rule.allowed_parameters or {}).items()},
        )
        for rule in granting(policy)
    }
    assert found == GOLDEN
    assert all(not rule.denied_parameters and not rule.required_parameters for rule in policy.rules)
    assert {rule.written for rule in denying(policy)} == {
        f"transit/keys/signing-audit-checkpoints/{sub}" for sub in SIGNING_SUB_PATHS
    }


def _inside(written: str) -> str:
    """A path the rule covers: a name under a glob, or the exact path."""
    return written.replace("*", "x")


def _other_value(value: Any) -> Any:
    return (not value) if isinstance(value, bool) else "rsa-4096"


VALUE_PROBES = [
    (written, name, value)
    for written, (_, parameters) in GOLDEN.items()
    for name, values in parameters.items()
    for value in values
]


@pytest.mark.parametrize(("written", "name", "value"), VALUE_PROBES)
def test_a_value_restricted_parameter_with_another_value_is_refused(written: str, name: str, value: Any) -> None:
    acl = ACL([shipped_policy()])

    assert acl.decide(_inside(written), "update", {name: value}).allowed
    assert not acl.decide(_inside(written), "update", {name: _other_value(value)}).allowed


def _outside(written: str) -> list[str]:
    """Paths just outside the rule: its last letter changed, a letter more (exact paths), a sibling name."""
    path = written.removesuffix("*")
    longer = [] if written.endswith("*") else [path + "X"]
    return [path[:-1] + "X", *longer, path.rsplit("/", 1)[0] + "/other"]


OUTSIDE_PROBES = [
    (written, path, capability)
    for written, (capabilities, _) in GOLDEN.items()
    for path in _outside(written)
    for capability in sorted(capabilities)
]


@pytest.mark.parametrize(("written", "path", "capability"), OUTSIDE_PROBES)
def test_names_just_outside_each_rule_are_refused(written: str, path: str, capability: str) -> None:
    acl = ACL([shipped_policy()])

    assert acl.decide(_inside(written), capability, {}).allowed
    assert not acl.decide(path, capability, {}).allowed


@pytest.mark.parametrize("sub", SIGNING_SUB_PATHS)
def test_the_platform_signing_keys_unused_sub_paths_are_denied(sub: str) -> None:
    text = SHIPPED_POLICY.read_text(encoding="utf-8")
    without_denies = text
    for rule in denying(shipped_policy()):
        without_denies = without_path(without_denies, rule.written)
    path = f"transit/keys/signing-audit-checkpoints/{sub}"

    for capability in ("create", "read", "update", "delete"):
        assert not decide(text, path, capability).allowed
    # The glob alone lets an empty-body write through: the deny is what refuses it.
    assert decide(without_denies, path, "update").allowed


def test_what_the_service_token_can_still_do_under_its_name_globs() -> None:
    """The residual power docs/operations/keys.md owns up to: soft-delete, restore and csr on names under a glob."""
    acl = ACL([shipped_policy()])
    text = SHIPPED_POLICY.read_text(encoding="utf-8")

    assert acl.decide("transit/keys/community-x/soft-delete", "delete", {}).allowed
    assert acl.decide("transit/keys/community-x/soft-delete-restore", "update", {}).allowed
    assert acl.decide("transit/keys/signing-audit-checkpoints-alpha/csr", "update", {}).allowed
    assert acl.decide("transit/keys/community-x/config", "update", {"deletion_allowed": True}).allowed
    assert acl.decide("transit/keys/community-x", "delete", {}).allowed
    # What their parameters refuse there: every one of these needs a parameter the rule does not list.
    assert not acl.decide("transit/keys/community-x/import", "update", {"ciphertext": "AAAA"}).allowed
    assert not acl.decide("transit/keys/community-x/import_version", "update", {"ciphertext": "AAAA"}).allowed
    assert not acl.decide(
        "transit/keys/signing-audit-checkpoints-alpha/set-certificate", "update", {"certificate_chain": "x"}
    ).allowed
    assert not acl.decide(
        "transit/keys/signing-audit-checkpoints-alpha/trim", "update", {"min_available_version": 2}
    ).allowed
    assert not acl.decide("transit/keys/signing-audit-checkpoints-alpha/soft-delete", "delete", {}).allowed
    # Why no deny carves them out: a "+" rule's wildcard comes before the glob's, so the glob decides.
    carved = text + '\npath "transit/keys/+/soft-delete" {\n  capabilities = ["deny"]\n}\n'
    assert decide(carved, "transit/keys/community-x/soft-delete", "delete").allowed


def test_an_auditor_opens_an_archive_with_the_audit_opener_policy_alone(
    vault_double: VaultState, db: None, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    community_with_a_trail("gamma")
    archive = audit_archive_create(community="gamma")  # the service seals it
    assert (
        as_root(vault_double, "PUT", "sys/policies/acl/audit-opener", {"policy": OPENER_POLICY.read_text()}).status
        == 204
    )
    opener = vault_double.system.issue_token(["audit-opener"])

    with override_settings(VAULT_TOKEN=opener):
        monkeypatch.setattr("security.audit.archives.get_provider", VaultTransitProvider)
        opened = audit_archive_open(community="gamma", to=tmp_path / "opened")
        with pytest.raises(KeyServiceUnavailable):
            VaultTransitProvider().generate_archive_data_key("audit", "gamma")
        with pytest.raises(KeyServiceUnavailable):
            VaultTransitProvider().unwrap("gamma", "vault:v1:AAAA")

    assert opened.key == archive.key
    assert opened.manifest["community"] == "gamma"


def test_a_backup_object_is_sealed_and_read_back_under_the_shipped_policy(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup store's calls on archive-backup, with the service's token: granted, and the key stays undeletable."""
    name = "wal/000000010000000000000001"
    chunks = [b"segment " * 10_000, b"", b"the tail"]  # more than one sealed chunk (64 KiB)
    usage = PolicyUsage()
    with running_vault() as (address, state):
        token = credentials(state).token
        state.observers += [usage.record, SESSION.record]
        with override_settings(KEY_PROVIDER="vault", VAULT_ADDR=address, VAULT_TOKEN=token):
            # A fresh provider per call, as the auditor's test does: get_provider() caches one per address.
            monkeypatch.setattr("operations.backups.store.get_provider", VaultTransitProvider)
            store = BackupStore(root=tmp_path)
            record = store.put(name, chunks)
            read = b"".join(store.read(name))
        state.observers.remove(usage.record)  # the refusals below are the point, not the service's
        state.observers.remove(SESSION.record)

        def status(method: str, path: str, body: dict[str, Any] | None = None) -> int:
            response = requests.request(
                method, f"{address}/v1/{path}", json=body, headers={"X-Vault-Token": token}, timeout=5
            )
            return response.status_code

        assert status("DELETE", "transit/keys/archive-backup") == 403
        assert status("POST", "transit/keys/archive-backup/config", {"deletion_allowed": True}) == 403
        key = state.keys["archive-backup"]  # created by the store, with the service's settings, and still there

    assert settings.BACKUP_KEY_NAME == "backup"
    assert usage.refusals() == []
    assert state.ignored == []
    assert usage.granted == {
        ("transit/keys/archive-backup", "read"),
        ("transit/keys/archive-backup", "update"),
        ("transit/datakey/wrapped/archive-backup", "update"),
        ("transit/decrypt/archive-backup", "update"),
    }
    assert read == b"".join(chunks)
    assert record.plain_bytes == len(read)
    assert (key.type, key.derived, key.exportable, key.allow_plaintext_backup, key.deletion_allowed) == (
        "aes256-gcm96",
        True,
        False,
        False,
        False,
    )


# --- the double's ACL follows Vault's -------------------------------------------------------------------

EXACT = 'path "transit/keys/a" { capabilities = ["update"] }'
GLOB = 'path "transit/keys/a*" { capabilities = ["update"] }'
STAR_INSIDE = 'path "transit/keys/*/config" { capabilities = ["update"] }'
SEGMENT = 'path "transit/keys/+/config" { capabilities = ["update"] }'


@pytest.mark.parametrize(
    ("policy", "path", "allowed"),
    [
        (EXACT, "transit/keys/a", True),
        (EXACT, "transit/keys/ab", False),
        (EXACT, "/transit/keys/a", True),  # a leading slash is not part of a Vault path
        (GLOB, "transit/keys/ab", True),
        (GLOB, "transit/keys/ab/config", True),  # the trailing * matches slashes too
        (GLOB, "transit/keys/b", False),
        (STAR_INSIDE, "transit/keys/a/config", False),  # a * inside a path is a literal
        (STAR_INSIDE, "transit/keys/*/config", True),
        (SEGMENT, "transit/keys/a/config", True),
        (SEGMENT, "transit/keys/a/b/config", False),  # + is one whole segment
        (SEGMENT, "transit/keys/a/rotate", False),
    ],
)
def test_paths_match_as_vault_matches_them(policy: str, path: str, allowed: bool) -> None:
    assert decide(policy, path).allowed is allowed


def test_the_most_specific_rule_decides_alone() -> None:
    policy = """
    path "transit/*" { capabilities = ["update"] }
    path "transit/keys/*" { capabilities = ["read"] }
    path "transit/keys/a" { capabilities = ["delete"] }
    path "transit/keys/+/config" { capabilities = ["update"] }
    path "transit/keys/community-*" { capabilities = ["read"] }
    path "transit/+/x" { capabilities = ["read"] }
    path "transit/keys/+" { capabilities = ["update"] }
    """
    assert decide(policy, "transit/keys/a", "delete").allowed  # exact first
    assert not decide(policy, "transit/keys/a", "update").allowed  # ...and alone
    assert not decide(policy, "transit/keys/b/rotate", "update").allowed  # the longer prefix, read only
    # The prefix's wildcard starts later than the segment's: it wins for a community key's config.
    assert decide(policy, "transit/keys/community-a/config", "update").rule == "transit/keys/community-*"
    # Of two segment rules, the one whose wildcard starts later wins.
    assert decide(policy, "transit/keys/x", "update").rule == "transit/keys/+"


def test_a_deny_wins_over_every_grant_on_the_same_path() -> None:
    granting = parse_policy("a", 'path "transit/keys/a" { capabilities = ["update", "read"] }')
    denying = parse_policy("b", 'path "transit/keys/a" { capabilities = ["deny"] }')

    for order in ([granting, denying], [denying, granting]):
        assert not ACL(order).decide("transit/keys/a", "read", {}).allowed
    assert (
        ACL([granting, parse_policy("c", 'path "transit/keys/a" { capabilities = ["delete"] }')])
        .decide("transit/keys/a", "delete", {})
        .allowed
    )  # grants on one path add up


def test_parameters_are_checked_as_vault_checks_them() -> None:
    allowed = 'path "p" { capabilities = ["update"] allowed_parameters = { "type" = ["aes*"] "bits" = [256] } }'
    denied = 'path "p" { capabilities = ["update"] denied_parameters = { "exportable" = [true] } }'
    required = 'path "p" { capabilities = ["update"] required_parameters = ["context"] }'

    assert decide(allowed, "p", data={"type": "aes256-gcm96"}).allowed  # a string value globs
    assert not decide(allowed, "p", data={"type": "ed25519"}).allowed
    assert not decide(allowed, "p", data={"other": 1}).allowed  # a parameter not listed
    assert not decide(allowed, "p", data={"bits": 256}).allowed  # a JSON number is never a listed value
    assert decide(allowed, "p").allowed  # no parameters at all
    assert not decide(denied, "p", data={"exportable": True}).allowed
    assert decide(denied, "p", data={"exportable": False}).allowed
    assert not decide(required, "p").allowed
    assert decide(required, "p", data={"context": "x"}).allowed
    # acl.go@v2.6.2:505-550: a required name must be spelt in lower case; allowed and denied ones are lowered.
    assert not decide(required, "p", data={"Context": "x"}).allowed
    assert decide(allowed, "p", data={"TYPE": "aes256-gcm96"}).allowed
    assert not decide(denied, "p", data={"Exportable": True}).allowed


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "sys/auth/approle2", {"type": "approle"}),
        ("PUT", "sys/audit/file2", {"type": "file", "options": {"file_path": "/var/log/vault/audit.log"}}),
        ("GET", "sys/audit", None),
    ],
)
def test_the_system_root_paths_need_sudo_as_well(method: str, path: str, body: dict[str, Any] | None) -> None:
    """logical_system.go@v2.6.2:67-88 (PathsSpecial.Root) and core.go@v2.6.2:3996: sudo besides the capability."""
    capabilities = '["create", "read", "update", "delete", "list"]'
    plain = (
        f'path "sys/auth/*" {{ capabilities = {capabilities} }}\npath "sys/audit*" {{ capabilities = {capabilities} }}'
    )
    with running_vault() as (address, state):
        state.system.audit_api_enabled = True  # as HashiCorp Vault (OpenBao refuses the audit API past the ACL)
        codes = []
        for name, text in (("plain", plain), ("with-sudo", plain.replace('"list"]', '"list", "sudo"]'))):
            assert as_root(state, "PUT", f"sys/policies/acl/{name}", {"policy": text}).status == 204
            headers = {"X-Vault-Token": state.system.issue_token([name])}
            response = requests.request(method, f"{address}/v1/{path}", json=body, headers=headers, timeout=5)
            codes.append(response.status_code)

    assert codes[0] == 403
    assert codes[1] in {200, 204}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path "a" { capabilities = ["write"] }', 'invalid capability "write"'),
        ('path "a+*" { capabilities = ["read"] }', "'+*' is forbidden"),
        ('path "a" { capabilities = ["read"] colour = "blue" }', "invalid key 'colour'"),
        ('paths "a" { capabilities = ["read"] }', "invalid key 'paths'"),
    ],
)
def test_a_policy_vault_would_not_store_is_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy("p", text)

    state = VaultState()
    assert as_root(state, "PUT", "sys/policies/acl/p", {"policy": text}).status == 400


def test_a_transit_write_is_an_update_even_when_it_creates_a_key() -> None:
    """request_handling.go: Transit's keys paths have no existence check, so "create" alone grants no write."""
    create_only = 'path "transit/keys/community-*" { capabilities = ["create", "read"] }'
    with running_vault() as (address, state):
        as_root(state, "PUT", "sys/policies/acl/create-only", {"policy": create_only})
        token = state.system.issue_token(["create-only"])
        with override_settings(VAULT_ADDR=address, VAULT_TOKEN=token), pytest.raises(KeyServiceUnavailable):
            VaultTransitProvider().create_community_key("alpha")

        assert "community-alpha" not in state.keys


def test_an_approle_role_write_is_create_first_and_update_after() -> None:
    """path_role.go has an existence check: a new role needs "create", an existing one "update"."""
    create_only = 'path "auth/approle/role/*" { capabilities = ["create"] }'
    with running_vault() as (address, state):
        as_root(state, "PUT", "sys/policies/acl/roles", {"policy": create_only})
        headers = {"X-Vault-Token": state.system.issue_token(["roles"])}
        url = f"{address}/v1/auth/approle/role/reports"

        first = requests.post(url, json={"token_policies": "default"}, headers=headers, timeout=5)
        second = requests.post(url, json={"token_policies": "default"}, headers=headers, timeout=5)

    assert (first.status_code, second.status_code) == (204, 403)


def test_the_root_token_is_not_held_to_any_policy() -> None:
    with running_vault() as (address, _state):
        response = requests.post(
            f"{address}/v1/transit/datakey/plaintext/community-x", json={}, headers={"X-Vault-Token": TOKEN}, timeout=5
        )

    assert response.status_code == 400  # past the ACL: Transit itself says no such key
    assert response.json() == {"errors": ["encryption key not found"]}
