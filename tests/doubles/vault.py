"""A loopback double of the parts of Vault the service uses, written from Vault's API documentation.

Transit: ``POST /v1/transit/keys/:name`` (create), ``GET`` (read),
``POST .../config``, ``POST .../rotate``, ``DELETE`` (only when
``deletion_allowed``), ``POST /v1/transit/datakey/wrapped/:name``,
``POST /v1/transit/decrypt/:name`` (derived keys need ``context``; versions
below ``min_decryption_version`` are refused as too old), and
``POST /v1/transit/config/keys`` (``disable_upsert``). Plus
``GET /v1/sys/health`` and AppRole login. Errors are JSON
``{"errors": [...]}``: a sealed Vault answers 503 to everything, a bad token
403 ("permission denied"), a missing key 400 ("encryption key not found").
Real AES-256-GCM with HKDF-derived per-context keys, so a wrong context fails.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN = "double-root-token"


@dataclass
class TransitKey:
    """One named key: its versions and its configuration."""

    versions: dict[int, bytes]
    min_decryption_version: int = 1
    deletion_allowed: bool = False
    derived: bool = True


@dataclass
class VaultState:
    """What the double holds; tests flip ``sealed`` and ``deny`` while it runs."""

    keys: dict[str, TransitKey] = field(default_factory=dict)
    sealed: bool = False
    deny: bool = False
    disable_upsert: bool = False
    calls: Counter[str] = field(default_factory=Counter)


def _derive(key: bytes, context: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=base64.b64decode(context)).derive(key)


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
        """Sealed: 503 to everything. Bad token: 403. True when the request may go on."""
        if self.state.sealed:
            self._reply(503, {"errors": ["Vault is sealed"]})
            return False
        if self.path.startswith("/v1/sys/health") or self.path.startswith("/v1/auth/approle/login"):
            return True
        if self.state.deny or self.headers.get("X-Vault-Token") != TOKEN:
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
        self._reply(
            200,
            {
                "data": {
                    "name": name,
                    "type": "aes256-gcm96",
                    "derived": key.derived,
                    "exportable": False,
                    "allow_plaintext_backup": False,
                    "deletion_allowed": key.deletion_allowed,
                    "latest_version": max(key.versions),
                    "min_decryption_version": key.min_decryption_version,
                    "keys": {str(version): 1700000000 for version in key.versions},
                }
            },
        )

    def do_DELETE(self) -> None:
        if not self._guard():
            return
        name = self.path.removeprefix("/v1/transit/keys/")
        key = self.state.keys.get(name)
        if key is not None and not key.deletion_allowed:
            self._reply(400, {"errors": ["deletion is not allowed for this key"]})
            return
        self.state.keys.pop(name, None)
        self.state.calls["delete"] += 1
        self._reply(204)

    def do_POST(self) -> None:
        if not self._guard():
            return
        body, path = self._body(), self.path
        if path == "/v1/auth/approle/login":
            self._reply(200, {"auth": {"client_token": TOKEN, "lease_duration": 3600}})
        elif path == "/v1/transit/config/keys":
            self.state.disable_upsert = bool(body.get("disable_upsert"))
            self._reply(204)
        elif path.startswith("/v1/transit/datakey/wrapped/"):
            self._datakey(path.removeprefix("/v1/transit/datakey/wrapped/"), body)
        elif path.startswith("/v1/transit/decrypt/"):
            self._decrypt(path.removeprefix("/v1/transit/decrypt/"), body)
        elif path.endswith("/rotate"):
            self._with_key(path.removeprefix("/v1/transit/keys/").removesuffix("/rotate"), self._rotate)
        elif path.endswith("/config"):
            self._with_key(
                path.removeprefix("/v1/transit/keys/").removesuffix("/config"), lambda k: self._config(k, body)
            )
        elif path.startswith("/v1/transit/keys/"):
            name = path.removeprefix("/v1/transit/keys/")
            self.state.keys.setdefault(
                name, TransitKey(versions={1: AESGCM.generate_key(bit_length=256)}, derived=bool(body.get("derived")))
            )
            self.state.calls["create"] += 1
            self._reply(204)
        else:
            self._reply(404, {"errors": []})

    def _with_key(self, name: str, action: Any) -> None:
        key = self.state.keys.get(name)
        if key is None:
            self._reply(400, {"errors": ["encryption key not found"]})
            return
        action(key)

    def _rotate(self, key: TransitKey) -> None:
        key.versions[max(key.versions) + 1] = AESGCM.generate_key(bit_length=256)
        self.state.calls["rotate"] += 1
        self._reply(204)

    def _config(self, key: TransitKey, body: dict[str, Any]) -> None:
        if "deletion_allowed" in body:
            key.deletion_allowed = bool(body["deletion_allowed"])
        if "min_decryption_version" in body:
            key.min_decryption_version = int(body["min_decryption_version"])
        self.state.calls["config"] += 1
        self._reply(204)

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
        self._reply(
            200,
            {
                "data": {
                    "ciphertext": f"vault:v{version}:" + base64.b64encode(nonce + wrapped).decode(),
                    "key_version": version,
                }
            },
        )

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
            plaintext = AESGCM(_derive(key.versions[version], body.get("context", ""))).decrypt(
                raw[:12], raw[12:], None
            )
        except (InvalidTag, ValueError):
            self._reply(400, {"errors": ["cipher: message authentication failed"]})
            return
        self.state.calls["decrypt"] += 1
        self._reply(200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}})


@contextmanager
def running_vault() -> Iterator[tuple[str, VaultState]]:
    """Serve the double on a free loopback port; yield its address and its state."""
    state = VaultState()
    handler = type("BoundVaultHandler", (VaultHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
