"""A loopback double of the parts of Vault the service uses, written from Vault's API documentation.

Transit: ``POST /v1/transit/keys/:name`` (create), ``GET`` (read),
``POST .../config``, ``POST .../rotate``, ``DELETE`` (only when
``deletion_allowed``), ``POST /v1/transit/datakey/wrapped/:name``,
``POST /v1/transit/decrypt/:name`` (derived keys need ``context``; versions
below ``min_decryption_version`` are refused as too old),
``POST /v1/transit/sign/:name`` (``ed25519`` keys: pure Ed25519 over the
base64-decoded ``input`` with the latest version, answered as
``vault:v<N>:<base64 signature>``), and
``POST /v1/transit/config/keys`` (``disable_upsert``). Plus
``GET /v1/sys/health`` and AppRole login. Errors are JSON
``{"errors": [...]}``: a sealed Vault answers 503 to everything, a bad token
403 ("permission denied"), a missing key 400 ("encryption key not found").
Create, rotate and config answer 200 with the key's details (Vault 1.11+);
a missing key is 400 ("encryption key not found" for datakey and decrypt,
"no existing key named ... could be found" for config); AppRole logins issue
fresh tokens, which ``expire_tokens()`` revokes as an ended lease would.
Real AES-256-GCM with HKDF-derived per-context keys, so a wrong context fails.
Keys are ``aes256-gcm96`` or ``ed25519`` (``type`` at creation); a read of an
``ed25519`` key lists each version's ``public_key`` (base64 of the raw 32
bytes) where an AES key lists creation times.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.doubles.server import serving

TOKEN = "double-root-token"
KEY_TYPES = ("aes256-gcm96", "ed25519")


@dataclass
class TransitKey:
    """One named key: its versions and its configuration."""

    versions: dict[int, bytes]
    min_decryption_version: int = 1
    deletion_allowed: bool = False
    derived: bool = True
    type: str = "aes256-gcm96"
    exportable: bool = False


@dataclass
class VaultState:
    """What the double holds; tests flip ``sealed`` and ``deny`` while it runs."""

    keys: dict[str, TransitKey] = field(default_factory=dict)
    sealed: bool = False
    deny: bool = False
    disable_upsert: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    issued_tokens: set[str] = field(default_factory=set)
    # When set, a sign call answers 200 with this body instead (a Vault, or a proxy, answering garbage).
    sign_answer: Any = None

    def expire_tokens(self) -> None:
        """AppRole tokens stop working (their lease ended)."""
        self.issued_tokens.clear()


def _derive(key: bytes, context: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=base64.b64decode(context)).derive(key)


def _new_key_material(key_type: str) -> bytes:
    if key_type == "ed25519":
        return Ed25519PrivateKey.generate().private_bytes_raw()
    return AESGCM.generate_key(bit_length=256)


def _version_entry(key: TransitKey, material: bytes) -> Any:
    """A creation time for a symmetric key; name, public key and creation time for an ed25519 key."""
    if key.type != "ed25519":
        return 1700000000
    public_key = Ed25519PrivateKey.from_private_bytes(material).public_key().public_bytes_raw()
    return {
        "name": "ed25519",
        "public_key": base64.b64encode(public_key).decode(),
        "creation_time": "2023-11-14T22:13:20Z",
    }


def _details(name: str, key: TransitKey) -> dict[str, Any]:
    """The body of a key read (and, on Vault 1.11+, of create, rotate and config)."""
    return {
        "data": {
            "name": name,
            "type": key.type,
            "derived": key.derived,
            "exportable": key.exportable,
            "allow_plaintext_backup": False,
            "deletion_allowed": key.deletion_allowed,
            "latest_version": max(key.versions),
            "min_decryption_version": key.min_decryption_version,
            "supports_signing": key.type == "ed25519",
            "keys": {str(version): _version_entry(key, material) for version, material in key.versions.items()},
        }
    }


class VaultHandler(BaseHTTPRequestHandler):
    """Routes the documented endpoints; ``state`` is set on a per-server subclass."""

    state: ClassVar[VaultState]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _guard(self) -> bool:
        """Sealed: 503 to everything. Bad or expired token: 403. True when the request may go on."""
        if self.state.sealed:
            self._reply(503, {"errors": ["Vault is sealed"]})
            return False
        if self.path.startswith(("/v1/sys/health", "/v1/auth/approle/login")):
            return True
        token = self.headers.get("X-Vault-Token")
        if self.state.deny or (token != TOKEN and token not in self.state.issued_tokens):
            self._reply(403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]})
            return False
        return True

    def do_GET(self) -> None:
        if not self._guard():
            return
        if self.path.startswith("/v1/sys/health"):
            self._reply(200, {"initialized": True, "sealed": False, "standby": False, "version": "1.17.0"})
            return
        name = self.path.removeprefix("/v1/transit/keys/")
        key = self.state.keys.get(name)
        if key is None:
            self._reply(404, {"errors": []})
            return
        self.state.calls["read"] += 1
        self._reply(200, _details(name, key))

    def do_DELETE(self) -> None:
        if not self._guard():
            return
        name = self.path.removeprefix("/v1/transit/keys/")
        key = self.state.keys.get(name)
        if key is None:
            self._reply(400, {"errors": [f"error deleting policy {name}: could not delete key; not found"]})
        elif not key.deletion_allowed:
            self._reply(400, {"errors": ["deletion is not allowed for this key"]})
        else:
            del self.state.keys[name]
            self.state.calls["delete"] += 1
            self._reply(204)

    def do_POST(self) -> None:
        if not self._guard():
            return
        body, path = self._body(), self.path
        if path == "/v1/auth/approle/login":
            issued = f"approle-{os.urandom(8).hex()}"
            self.state.issued_tokens.add(issued)
            self._reply(200, {"auth": {"client_token": issued, "lease_duration": 3600}})
        elif path == "/v1/transit/config/keys":
            self.state.disable_upsert = bool(body.get("disable_upsert"))
            self._reply(204)
        elif path.startswith("/v1/transit/datakey/wrapped/"):
            self._datakey(path.removeprefix("/v1/transit/datakey/wrapped/"), body)
        elif path.startswith("/v1/transit/decrypt/"):
            self._decrypt(path.removeprefix("/v1/transit/decrypt/"), body)
        elif path.startswith("/v1/transit/sign/"):
            self._sign(path.removeprefix("/v1/transit/sign/"), body)
        elif path.startswith("/v1/transit/keys/"):
            self._keys(path.removeprefix("/v1/transit/keys/"), body)
        else:
            self._reply(404, {"errors": []})

    def _keys(self, rest: str, body: dict[str, Any]) -> None:
        """``keys/:name`` (create), ``keys/:name/rotate``, ``keys/:name/config``."""
        name, _, action = rest.partition("/")
        key = self.state.keys.get(name)
        if not action:
            self._create(name, key, body)
        elif key is None:
            missing = "key not found" if action == "rotate" else f"no existing key named {name} could be found"
            self._reply(400, {"errors": [missing]})
        elif action == "rotate":
            key.versions[max(key.versions) + 1] = _new_key_material(key.type)
            self.state.calls["rotate"] += 1
            self._reply(200, _details(name, key))
        else:
            self._config(name, key, body)

    def _create(self, name: str, key: TransitKey | None, body: dict[str, Any]) -> None:
        """An existing key is left as it is (Vault ignores the new parameters)."""
        key_type = body.get("type", "aes256-gcm96")
        if key_type not in KEY_TYPES:
            self._reply(400, {"errors": [f"unknown key type {key_type}"]})
            return
        if key is None:
            key = self.state.keys[name] = TransitKey(
                versions={1: _new_key_material(key_type)},
                derived=bool(body.get("derived")),
                type=key_type,
                exportable=bool(body.get("exportable")),
            )
        self.state.calls["create"] += 1
        self._reply(200, _details(name, key))

    def _config(self, name: str, key: TransitKey, body: dict[str, Any]) -> None:
        if "deletion_allowed" in body:
            key.deletion_allowed = bool(body["deletion_allowed"])
        if "min_decryption_version" in body:
            wanted = int(body["min_decryption_version"])
            if wanted > max(key.versions):
                self._reply(400, {"errors": ["cannot set min decryption version greater than the latest version"]})
                return
            key.min_decryption_version = wanted
        self.state.calls["config"] += 1
        self._reply(200, _details(name, key))

    def _datakey(self, name: str, body: dict[str, Any]) -> None:
        key = self.state.keys.get(name)
        if key is None:
            self._reply(400, {"errors": ["encryption key not found"]})
            return
        if key.derived and not body.get("context"):
            self._reply(
                400, {"errors": ["missing 'context' for key derivation; the key was created using a derived key"]}
            )
            return
        version = max(key.versions)
        nonce = os.urandom(12)
        wrapped = AESGCM(_derive(key.versions[version], body["context"])).encrypt(nonce, os.urandom(32), None)
        self.state.calls["datakey"] += 1
        ciphertext = f"vault:v{version}:" + base64.b64encode(nonce + wrapped).decode()
        self._reply(200, {"data": {"ciphertext": ciphertext, "key_version": version}})

    def _decrypt(self, name: str, body: dict[str, Any]) -> None:
        key = self.state.keys.get(name)
        if key is None:
            self._reply(400, {"errors": ["encryption key not found"]})
            return
        _, version_text, data = str(body.get("ciphertext", "")).split(":", 2)
        version = int(version_text.removeprefix("v"))
        if version < key.min_decryption_version or version not in key.versions:
            self._reply(400, {"errors": ["ciphertext or signature version is disallowed by policy (too old)"]})
            return
        raw = base64.b64decode(data)
        try:
            cipher = AESGCM(_derive(key.versions[version], body.get("context", "")))
            plaintext = cipher.decrypt(raw[:12], raw[12:], None)
        except (InvalidTag, ValueError):
            self._reply(400, {"errors": ["cipher: message authentication failed"]})
            return
        self.state.calls["decrypt"] += 1
        self._reply(200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}})

    def _sign(self, name: str, body: dict[str, Any]) -> None:
        key = self.state.keys.get(name)
        if key is None:
            self._reply(400, {"errors": ["encryption key not found"]})
            return
        if key.type != "ed25519":
            self._reply(400, {"errors": [f"key type {key.type} does not support signing"]})
            return
        try:
            message = base64.b64decode(str(body.get("input", "")), validate=True)
        except ValueError as error:
            self._reply(400, {"errors": [f"unable to decode input as base64: {error}"]})
            return
        self.state.calls["sign"] += 1
        if self.state.sign_answer is not None:
            self._reply(200, self.state.sign_answer)
            return
        version = max(key.versions)
        signature = Ed25519PrivateKey.from_private_bytes(key.versions[version]).sign(message)
        self._reply(200, {"data": {"signature": f"vault:v{version}:" + base64.b64encode(signature).decode()}})


@contextmanager
def running_vault() -> Iterator[tuple[str, VaultState]]:
    """Serve the double on a free loopback port; yield its address and its state."""
    state = VaultState()
    with serving(type("BoundVaultHandler", (VaultHandler,), {"state": state})) as url:
        yield url, state
