"""The Transit secrets engine of the Vault double, as OpenBao v2.6.2's ``builtin/logical/transit`` answers.

Keys are ``aes256-gcm96`` (real AES-256-GCM, derived keys through HKDF-SHA256
with the context as info, as ``keysutil`` ``Kdf_hkdf_sha256``) or ``ed25519``.
Versions below ``min_decryption_version`` are archived: a read lists only
the versions from it up, lowering it brings them back, and only ``trim``
deletes them for good (``sdk/helper/keysutil/policy.go@v2.6.2``
``handleArchiving``). Every message below is the source's, with the file it
comes from.

Two modes model older Vaults (``TransitMount``): ``write_answers="empty"``
answers create, config, rotate and trim with 204, as HashiCorp Vault did
before 1.14.0 (hashicorp/vault#20652, "Respond to writes with updated key
policy"); ``aead_failure_status=500`` answers a failed AEAD open with 500, as
before hashicorp/vault#10914 (merged for 1.10.0; the 500 is
hashicorp/vault#10842, reported on 1.6.0).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.doubles.vault_framework import NAME, Call, Reply, Route, answer, not_found, refuse

KEY_TYPES = ("aes256-gcm96", "ed25519")
# path_keys.go@v2.6.2 pathPolicyWrite: the types Vault knows; the double implements KEY_TYPES only.
_VAULT_KEY_TYPES = frozenset(
    {
        "aes128-gcm96",
        "aes256-gcm96",
        "chacha20-poly1305",
        "xchacha20-poly1305",
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "ed25519",
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "hmac",
    }
)
_NONCE_BYTES = 12
_CREATED = 1700000000
# keysutil/policy.go@v2.6.2:809
MISSING_CONTEXT = (
    "missing 'context' for key derivation; the key was created using a derived key, which means additional, "
    "per-request information must be included in order to perform operations with the key"
)
TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"  # policy.go@v2.6.2:79


class _UserError(Exception):
    """keysutil's ``errutil.UserError``: the transit handlers answer it 400."""


@dataclass
class TransitKey:
    """One named key: every version Vault still holds (archived or not) and the key's configuration."""

    versions: dict[int, bytes]
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    min_available_version: int = 0
    deletion_allowed: bool = False
    derived: bool = True
    type: str = "aes256-gcm96"
    exportable: bool = False
    allow_plaintext_backup: bool = False
    imported: bool = False
    auto_rotate_period: int = 0  # seconds
    convergent_encryption: bool = False
    soft_deleted: bool = False

    @property
    def latest_version(self) -> int:
        """The newest version."""
        return max(self.versions)

    def listed(self) -> dict[int, bytes]:
        """The versions a read shows: from ``min_decryption_version`` up (the rest are archived)."""
        return {version: key for version, key in self.versions.items() if version >= self.min_decryption_version}

    def key_for(self, version: int, context: bytes) -> bytes:
        """``GetKey``: the raw version for a key that is not derived, else HKDF with the context."""
        if version not in self.versions:
            raise _UserError("no such key version")
        if not self.derived:
            return self.versions[version]
        if not context:
            raise _UserError(MISSING_CONTEXT)
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context).derive(self.versions[version])


@dataclass
class TransitMount:
    """A Transit mount: its keys, ``config/keys`` and the modes that model older Vaults."""

    keys: dict[str, TransitKey] = field(default_factory=dict)
    disable_upsert: bool = False
    write_answers: str = "key"
    aead_failure_status: int = 400
    # When set, a sign call answers 200 with this body instead (a Vault, or a proxy, answering garbage).
    sign_answer: Any = None

    def written(self, name: str, key: TransitKey, warnings: list[str] | None = None) -> Reply:
        """What a write answers: the key's details (Vault 1.14 and OpenBao), or 204 before 1.14."""
        if self.write_answers == "empty":
            return answer()
        return answer(details(name, key), warnings=warnings)


def new_key_material(key_type: str) -> bytes:
    """A fresh version: 32 random bytes for AES, an Ed25519 seed for ed25519."""
    if key_type == "ed25519":
        return Ed25519PrivateKey.generate().private_bytes_raw()
    return AESGCM.generate_key(bit_length=256)


def _version_entry(key: TransitKey, material: bytes) -> Any:
    """path_keys.go@v2.6.2 formatKeyPolicy: a creation time (AES); name, public key, chain, time (ed25519)."""
    if key.type != "ed25519":
        return _CREATED
    public_key = Ed25519PrivateKey.from_private_bytes(material).public_key().public_bytes_raw()
    return {
        "name": "ed25519",
        # A derived ed25519 key read without a context shows no public key (formatKeyPolicy).
        "public_key": "" if key.derived else base64.b64encode(public_key).decode(),
        "certificate_chain": "",
        "creation_time": "2023-11-14T22:13:20Z",
    }


def details(name: str, key: TransitKey) -> dict[str, Any]:
    """path_keys.go@v2.6.2 ``formatKeyPolicy``: the data of a read (and of every write since 1.14)."""
    data: dict[str, Any] = {
        "name": name,
        "type": key.type,
        "derived": key.derived,
        "deletion_allowed": key.deletion_allowed,
        "min_available_version": key.min_available_version,
        "min_decryption_version": key.min_decryption_version,
        "min_encryption_version": key.min_encryption_version,
        "latest_version": key.latest_version,
        "exportable": key.exportable,
        "allow_plaintext_backup": key.allow_plaintext_backup,
        "supports_encryption": key.type != "ed25519",
        "supports_decryption": key.type != "ed25519",
        "supports_signing": key.type == "ed25519",
        "supports_derivation": True,
        "auto_rotate_period": key.auto_rotate_period,
        "imported_key": key.imported,
        "soft_deleted": key.soft_deleted,
        "keys": {str(version): _version_entry(key, material) for version, material in key.listed().items()},
    }
    if key.derived:
        data |= {"kdf": "hkdf_sha256", "convergent_encryption": key.convergent_encryption}
        if key.convergent_encryption:
            data["convergent_encryption_version"] = 3  # currentConvergentVersion, keysutil/lock_manager.go@v2.6.2:21
    return data


def _context(call: Call) -> bytes:
    raw = str(call.get("context", ""))
    try:
        return base64.b64decode(raw, validate=True) if raw else b""
    except binascii.Error as error:
        raise _UserError("failed to base64-decode context") from error


# --- keys/:name ---------------------------------------------------------------------------------------


def _create(mount: TransitMount, call: Call) -> Reply:
    """path_keys.go@v2.6.2 pathPolicyWrite: an existing key keeps its settings, with a warning."""
    name, key_type = call.get("name"), call.get("type", "aes256-gcm96")
    period = call.get("auto_rotate_period", 0)
    if period and period < 3600:
        return refuse("auto rotate period must be 0 to disable or at least an hour")
    if call.get("convergent_encryption") and not call.get("derived"):
        return refuse("convergent encryption requires derivation to be enabled")
    if key_type not in _VAULT_KEY_TYPES:
        return refuse(f"unknown key type {key_type}")
    if key_type not in KEY_TYPES:
        raise NotImplementedError(f"the Vault double does not implement key type {key_type}")
    existing = mount.keys.get(name)
    if existing is not None:
        return mount.written(name, existing, [f"key {name} already existed"])
    key = mount.keys[name] = TransitKey(
        versions={1: new_key_material(key_type)},
        derived=bool(call.get("derived", False)),
        type=key_type,
        exportable=bool(call.get("exportable", False)),
        allow_plaintext_backup=bool(call.get("allow_plaintext_backup", False)),
    )
    return mount.written(name, key)


def _read(mount: TransitMount, call: Call) -> Reply:
    key = mount.keys.get(call.get("name"))
    if key is None:
        return not_found()
    if call.get("context"):
        raise NotImplementedError("the Vault double does not derive public keys for a context")
    return answer(details(call.get("name"), key))


def _delete(mount: TransitMount, call: Call) -> Reply:
    """path_keys.go@v2.6.2 pathPolicyDelete and keysutil/lock_manager.go DeletePolicy."""
    name = call.get("name")
    key = mount.keys.get(name)
    if key is None:
        return refuse(f"error deleting policy {name}: could not delete key; not found")
    if not key.deletion_allowed:
        return refuse(f"error deleting policy {name}: deletion is not allowed for this key")
    del mount.keys[name]
    return answer()


# --- keys/:name/config, rotate, trim -------------------------------------------------------------------


def _config(mount: TransitMount, call: Call) -> Reply:
    """path_keys_config.go@v2.6.2 pathKeysConfigWrite; nothing changes when it refuses."""
    name = call.get("name")
    key = mount.keys.get(name)
    if key is None:
        return refuse(f"no existing key named {name} could be found")
    saved = (key.min_decryption_version, key.min_encryption_version, key.deletion_allowed)
    refused = _configure(key, call)
    if refused is not None:
        key.min_decryption_version, key.min_encryption_version, key.deletion_allowed = saved
        return refuse(refused)
    if call.has("exportable") and call.get("exportable"):
        key.exportable = True  # once set, never unset
    if call.has("allow_plaintext_backup") and call.get("allow_plaintext_backup"):
        key.allow_plaintext_backup = True
    return mount.written(name, key)


def _configure(key: TransitKey, call: Call) -> str | None:
    """The version and deletion settings, in the source's order; the refusal's text, or None."""
    refused = _minimum(key, call, "decryption") or _minimum(key, call, "encryption")
    if refused is not None:
        return refused
    if 0 < key.min_encryption_version < key.min_decryption_version:
        return (
            f"cannot set min encryption/decryption values; min encryption version of {key.min_encryption_version} "
            f"must be greater than or equal to min decryption version of {key.min_decryption_version}"
        )
    if call.has("deletion_allowed"):
        key.deletion_allowed = call.get("deletion_allowed")
    if key.min_available_version > key.min_encryption_version:
        return "min encryption version should not be less than min available version"
    if key.min_available_version > key.min_decryption_version:
        return "min decryption version should not be less then min available version"
    return None


def _minimum(key: TransitKey, call: Call, which: str) -> str | None:
    """``min_decryption_version`` (0 means 1) or ``min_encryption_version``: not negative, not above the latest."""
    field_name = f"min_{which}_version"
    if not call.has(field_name):
        return None
    wanted = call.get(field_name)
    if wanted < 0:
        return f"min {which} version cannot be negative"
    if which == "decryption":
        wanted = max(wanted, 1)
    if wanted != getattr(key, field_name) and wanted > key.latest_version:
        return f"cannot set min {which} version of {wanted}, latest key version is {key.latest_version}"
    setattr(key, field_name, wanted)
    return None


def _rotate(mount: TransitMount, call: Call) -> Reply:
    """path_rotate.go@v2.6.2: a new latest version (the double refuses imported keys, as Rotate does)."""
    name = call.get("name")
    key = mount.keys.get(name)
    if key is None:
        return refuse("key not found")
    if key.imported:
        return refuse(f"imported key {name} does not allow rotation within Vault", 500)
    key.versions[key.latest_version + 1] = new_key_material(key.type)
    return mount.written(name, key)


def _trim(mount: TransitMount, call: Call) -> Reply:
    """path_trim.go@v2.6.2 pathTrimUpdate: versions below ``min_available_version`` are deleted for good."""
    name = call.get("name")
    key = mount.keys.get(name)
    if key is None:
        return refuse("invalid key name")
    if not call.has("min_available_version"):
        return refuse("missing min_available_version")
    wanted = call.get("min_available_version")
    refused = _trim_refusal(key, wanted)
    if refused is not None:
        return refuse(refused)
    key.min_available_version = wanted
    for version in [version for version in key.versions if version < wanted]:
        del key.versions[version]
    return mount.written(name, key)


def _trim_refusal(key: TransitKey, wanted: int) -> str | None:
    # The source's order, and its spelling ("minmum").
    checks = [
        (wanted < key.min_available_version, "minimum available version cannot be decremented"),
        (
            key.min_encryption_version == 0,
            "minimum available version cannot be set when minimum encryption version is not set",
        ),
        (
            key.min_decryption_version == 0,
            "minimum available version cannot be set when minimum decryption version is not set",
        ),
        (
            wanted > key.min_encryption_version,
            "minimum available version cannot be greater than minmum encryption version",
        ),
        (
            wanted > key.min_decryption_version,
            "minimum available version cannot be greater than minimum decryption version",
        ),
        (wanted < 0, "minimum available version cannot be negative"),
        (wanted == 0, "minimum available version should be positive"),
    ]
    return next((message for failed, message in checks if failed), None)


# --- datakey, decrypt, sign ----------------------------------------------------------------------------


def _datakey(mount: TransitMount, call: Call) -> Reply:
    """path_datakey.go@v2.6.2 pathDatakeyWrite: a random key, encrypted (as raw bytes) by the named key."""
    if call.get("plaintext") not in ("plaintext", "wrapped"):
        return refuse("Invalid path, must be 'plaintext' or 'wrapped'")
    try:
        context = _context(call)
    except _UserError as error:
        return refuse(str(error))
    key = mount.keys.get(call.get("name"))
    if key is None:
        return refuse("encryption key not found")
    sizes = {512: 64, 256: 32, 128: 16}
    if call.get("bits", 256) not in sizes:
        return refuse("invalid bit length")
    if call.get("associated_data"):
        raise NotImplementedError("the Vault double does not implement associated_data")
    new_key = os.urandom(sizes[call.get("bits", 256)])
    try:
        version, ciphertext = _encrypt(key, call.get("key_version", 0), context, new_key)
    except _UserError as error:
        return refuse(str(error))
    data: dict[str, Any] = {"ciphertext": ciphertext, "key_version": version}
    if call.get("plaintext") == "plaintext":
        data["plaintext"] = base64.b64encode(new_key).decode()
    return answer(data)


def _encrypt(key: TransitKey, version: int, context: bytes, plaintext: bytes) -> tuple[int, str]:
    """policy.go@v2.6.2 EncryptWithFactory: the version checks, then AES-GCM with the nonce in front."""
    if key.type == "ed25519":
        raise _UserError(f"message encryption not supported for key type {key.type}")
    if version == 0:
        version = key.latest_version
    elif version < 0:
        raise _UserError("requested version for encryption is negative")
    elif version > key.latest_version:
        raise _UserError("requested version for encryption is higher than the latest key version")
    elif version < key.min_encryption_version:
        raise _UserError("requested version for encryption is less than the minimum encryption key version")
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key.key_for(version, context)).encrypt(nonce, plaintext, None)
    return version, f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()


def _decrypt(mount: TransitMount, call: Call) -> Reply:
    """path_decrypt.go@v2.6.2 pathDecryptWrite (one item, no batch)."""
    if call.has("batch_input") or call.get("associated_data"):
        raise NotImplementedError("the Vault double does not implement batch_input or associated_data")
    ciphertext = str(call.get("ciphertext", ""))
    try:
        if not ciphertext:
            raise _UserError("missing ciphertext to decrypt")
        context = _context(call)
        key = mount.keys.get(call.get("name"))
        if key is None:
            raise _UserError("encryption key not found")
        plaintext = _decrypted(key, ciphertext, context)
    except _UserError as error:
        return refuse(str(error))
    except InvalidTag:
        if mount.aead_failure_status == 500:
            return refuse("1 error occurred:\n\t* cipher: message authentication failed\n\n", 500)
        return refuse("cipher: message authentication failed")  # policy.go@v2.6.2:2046
    return answer({"plaintext": base64.b64encode(plaintext).decode()})


def _decrypted(key: TransitKey, ciphertext: str, context: bytes) -> bytes:
    """policy.go@v2.6.2 DecryptWithFactory: prefix, version ("too new" above the latest, "too old" below min)."""
    if key.type == "ed25519":
        raise _UserError(f"message decryption not supported for key type {key.type}")
    if not ciphertext.startswith("vault:v"):
        raise _UserError("invalid ciphertext: no prefix")
    parts = ciphertext.removeprefix("vault:v").split(":", 1)
    if len(parts) != 2:
        raise _UserError("invalid ciphertext: wrong number of fields")
    if not parts[0].isdigit():
        raise _UserError("invalid ciphertext: version number could not be decoded")
    version = max(int(parts[0]), 1)
    if version > key.latest_version:
        raise _UserError("invalid ciphertext: version is too new")
    if version < key.min_decryption_version:
        raise _UserError(TOO_OLD)
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except binascii.Error as error:
        raise _UserError("invalid ciphertext: could not decode base64") from error
    cipher = AESGCM(key.key_for(version, context))  # GetKey before SymmetricDecryptRaw's length check
    if len(raw) < _NONCE_BYTES:
        raise _UserError("invalid ciphertext length")
    return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)


def _sign(mount: TransitMount, call: Call) -> Reply:
    """path_sign_verify.go@v2.6.2 pathSignWrite: pure Ed25519 over the decoded input, ``vault:v<N>:``."""
    key = mount.keys.get(call.get("name"))
    if key is None:
        return refuse("signing key not found")
    if key.type != "ed25519":
        return refuse(f"key type {key.type} does not support signing")
    if call.has("batch_input") or call.get("prehashed"):
        raise NotImplementedError("the Vault double does not implement batch_input or prehashed")
    try:
        message = base64.b64decode(str(call.get("input", "")), validate=True)
    except binascii.Error as error:
        return refuse(f"unable to decode input as base64: {error}")
    if mount.sign_answer is not None:
        return Reply(200, raw=mount.sign_answer)
    version = key.latest_version
    try:
        seed = key.key_for(version, _context(call))
    except _UserError as error:
        return refuse(str(error))
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    return answer({"signature": f"vault:v{version}:" + base64.b64encode(signature).decode(), "key_version": version})


def _config_keys(mount: TransitMount, call: Call) -> Reply:
    """path_config_keys.go@v2.6.2: 200 ``{"disable_upsert": ...}`` on a write and on a read."""
    if call.operation == "update":
        mount.disable_upsert = bool(call.get("disable_upsert", False))
    return answer({"disable_upsert": mount.disable_upsert})


# The routes inside a Transit mount, with each path's fields as its framework.Path declares them at v2.6.2.
_KEY = f"keys/(?P<name>{NAME})"
ROUTES = (
    Route(
        f"{_KEY}",
        {"update": _create, "read": _read, "delete": _delete},
        {
            "name": "string",
            "type": "string",
            "derived": "bool",
            "convergent_encryption": "bool",
            "exportable": "bool",
            "allow_plaintext_backup": "bool",
            "context": "string",
            "auto_rotate_period": "duration",
            "key_size": "int",
        },
    ),
    Route(
        f"{_KEY}/config",
        {"update": _config},
        {
            "name": "string",
            "min_decryption_version": "int",
            "min_encryption_version": "int",
            "deletion_allowed": "bool",
            "exportable": "bool",
            "allow_plaintext_backup": "bool",
            "auto_rotate_period": "duration",
        },
    ),
    Route(f"{_KEY}/rotate", {"update": _rotate}, {"name": "string"}),
    Route(f"{_KEY}/trim", {"update": _trim}, {"name": "string", "min_available_version": "int"}),
    Route(
        f"datakey/(?P<plaintext>{NAME})/(?P<name>{NAME})",
        {"update": _datakey},
        {
            "name": "string",
            "plaintext": "string",
            "context": "string",
            "bits": "int",
            "key_version": "int",
            "associated_data": "string",
        },
    ),
    Route(
        f"decrypt/(?P<name>{NAME})",
        {"update": _decrypt},
        {
            "name": "string",
            "ciphertext": "string",
            "context": "string",
            "partial_failure_response_code": "int",
            "associated_data": "string",
            "batch_input": "slice",
        },
    ),
    Route(
        f"sign/(?P<name>{NAME})(?:/(?P<urlalgorithm>{NAME}))?",
        {"update": _sign},
        {
            "name": "string",
            "input": "string",
            "context": "string",
            "hash_algorithm": "string",
            "algorithm": "string",
            "urlalgorithm": "string",
            "key_version": "int",
            "prehashed": "bool",
            "signature_algorithm": "string",
            "marshaling_algorithm": "string",
            "salt_length": "string",
            "batch_input": "slice",
        },
    ),
    Route("config/keys", {"update": _config_keys, "read": _config_keys}, {"disable_upsert": "bool"}),
)
