"""The production key provider: HashiCorp Vault's (or OpenBao's) Transit engine, through hvac.

A community's key is the Transit key ``<VAULT_KEY_PREFIX><community>``
(``aes256-gcm96``, derived with the community as context); a signing key is
``signing-<name>`` (``ed25519``, not derived); the archive key is
``archive-<name>`` (``aes256-gcm96``, derived with the community as context).
All are created not exportable and with no plaintext backup; whether created
here or found there, a key is used only after a read shows exactly those
settings (Vault answers a create on an existing name 200 with a warning and
ignores the new parameters, ``builtin/logical/transit/path_keys.go@v2.6.2:318``),
and its deletion is turned off if it was allowed. Only crypto-shredding
allows, then deletes, a community's key; nothing deletes the others.
Retiring versions trims them: an operator cannot bring them back.

Vault's faults fail closed: a community key (or version) that is gone raises
``KeyDestroyed``; anything else, a missing signing key included, raises
``KeyServiceUnavailable``. The Vault policy these calls need is
``deploy/vault/gateway-service.hcl``.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hvac
import requests
from django.conf import settings
from hvac import exceptions as vault_errors
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.schema import SLUG_PATTERN
from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers.base import Signature, WrappedKey, archive_key_name, signing_key_name

# Vault's 400 answers that mean the key (or key version) is gone for good: "encryption key not found",
# "no existing key named ...", "...(too old)" (keysutil/policy.go@v2.6.2:79).
_GONE_MESSAGES = ("not found", "no existing key", "too old")
# Go's crypto/cipher text for an AEAD failure: to an unwrap, the wrapped key does not open with this key
# (400; Vault before 1.10.0 answered it 500, hashicorp/vault#10842, fixed by #10914). Only an unwrap reads
# it so: any other call's 500 with that text is the storage barrier failing (vault/barrier/aes_gcm.go@v2.6.2:896).
_AEAD_FAILURE = "message authentication failed"
# A ciphertext newer than the key (policy.go@v2.6.2:1026): Vault was restored from an older backup. The
# wrapped key is not gone; Vault is behind.
_TOO_NEW = "version is too new"
_SIGNING_KEY_PREFIX = "signing-"
_ARCHIVE_KEY_PREFIX = "archive-"
_VAULT_SIGNATURE_RE = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/=]+)")
_VAULT_CIPHERTEXT_RE = re.compile(r"vault:v([1-9][0-9]{0,9}):[A-Za-z0-9+/]+={0,2}")
_VERSION_RE = re.compile(r"[1-9][0-9]{0,9}")
_SIGNATURE_BYTES = 64
_PUBLIC_KEY_BYTES = 32
_DATA_KEY_BYTES = 32

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _KeySettings:
    """What a kind of key is created with, and what a read of it must show before it is used."""

    what: str
    type: str
    derived: bool


_COMMUNITY = _KeySettings("key", "aes256-gcm96", derived=True)
_SIGNING = _KeySettings("signing key", "ed25519", derived=False)
_ARCHIVE = _KeySettings("archive key", "aes256-gcm96", derived=True)


def _context(community: str) -> str:
    return base64.b64encode(community.encode()).decode()


@contextmanager
def _signing_key_must_exist(what: str) -> Iterator[None]:
    """Vault's "not found" means KeyDestroyed to ``_call``; a missing signing key is a fault to fix, not a shred."""
    try:
        yield
    except KeyDestroyed as error:
        raise KeyServiceUnavailable(f"{what}: no such signing key") from error


def _strict_base64(text: Any, length: int, what: str) -> bytes:
    """Canonical standard base64 of exactly ``length`` bytes, else KeyServiceUnavailable."""
    if not isinstance(text, str):
        raise KeyServiceUnavailable(f"vault answered a malformed {what}")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != length or base64.b64encode(raw).decode() != text:
        raise KeyServiceUnavailable(f"vault answered a malformed {what}")
    return raw


def _data(response: Any) -> dict[str, Any]:
    """``data`` of a JSON 200; hvac hands back the raw response for a 204 or a body that is not JSON."""
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise KeyServiceUnavailable("vault answered without data")
    return data


def _wrapped(response: Any) -> WrappedKey:
    """``data.ciphertext`` = ``vault:v<N>:<base64>``; anything else is a fault of the answer, not a gone key."""
    ciphertext = _data(response).get("ciphertext")
    match = _VAULT_CIPHERTEXT_RE.fullmatch(ciphertext) if isinstance(ciphertext, str) else None
    if match is None:
        raise KeyServiceUnavailable("vault answered a malformed wrapped key")
    return WrappedKey(match.group(0), int(match.group(1)))


def _unwrapped(response: Any) -> bytes:
    """``data.plaintext``: the base64 of the 32-byte data key."""
    return _strict_base64(_data(response).get("plaintext"), _DATA_KEY_BYTES, "data key")


def _latest_version(data: dict[str, Any]) -> int:
    version = data.get("latest_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise KeyServiceUnavailable("vault answered a malformed key version")
    return version


def _vault_signature(response: Any) -> Signature:
    """``data.signature`` = ``vault:v<N>:<base64 of the raw 64-byte signature>``, nothing else."""
    text = _data(response).get("signature")
    match = _VAULT_SIGNATURE_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise KeyServiceUnavailable("vault answered a malformed signature")
    return Signature(int(match.group(1)), _strict_base64(match.group(2), _SIGNATURE_BYTES, "signature"))


def _vault_public_keys(response: Any) -> dict[int, bytes]:
    """``data.keys`` of an ed25519 key: ``{"1": {"public_key": <base64 of 32 bytes>, ...}, ...}``."""
    data = _data(response)
    versions = data.get("keys")
    if data.get("type") != "ed25519" or not isinstance(versions, dict) or not versions:
        raise KeyServiceUnavailable("the signing key in vault is not an ed25519 key")
    published: dict[int, bytes] = {}
    for number, entry in versions.items():
        public_key = entry.get("public_key") if isinstance(entry, dict) else None
        if not isinstance(number, str) or not _VERSION_RE.fullmatch(number) or not isinstance(public_key, str):
            raise KeyServiceUnavailable("vault answered a malformed key version")
        published[int(number)] = _strict_base64(public_key, _PUBLIC_KEY_BYTES, "public key")
    return published


# A setting older Vaults' reads do not show: auto-rotation came with Vault 1.10, so absent means none.
_ABSENT_MEANS = {"auto_rotate_period": 0}


def _unsafe_setting(data: dict[str, Any], kind: _KeySettings) -> str | None:
    """The first setting a key's read shows that the service refuses to use it with (None when all are right)."""
    expected: dict[str, Any] = {
        "type": kind.type,
        "derived": kind.derived,
        "exportable": False,
        "allow_plaintext_backup": False,
        # Vault adding versions on its own: one new-key step (a data key, then an index key) could span two.
        "auto_rotate_period": 0,
    }
    for setting, wanted in expected.items():
        found = data.get(setting, _ABSENT_MEANS.get(setting))
        if type(found) is not type(wanted) or found != wanted:
            return f"{setting} is {found!r}, not {wanted!r}"
    # Material made outside Vault (path_import.go); convergent encryption (a nonce derived from the
    # plaintext: the same plaintext and context, the same ciphertext); a key soft-deleted, which Vault
    # refuses every operation on (path_keys.go@v2.6.2:167-225).
    refused = [flag for flag in ("imported_key", "convergent_encryption", "soft_deleted") if data.get(flag) is True]
    return f"{refused[0]} is True" if refused else None


def _classified(what: str, error: Exception, *, unwrapping: bool) -> Exception:
    """What a Vault fault means to the service: gone for good (KeyDestroyed), or a fault to retry."""
    message = str(error).lower()
    if (
        unwrapping
        and _AEAD_FAILURE in message
        and isinstance(error, vault_errors.InvalidRequest | vault_errors.InternalServerError)
    ):
        return KeyDestroyed(f"{what}: {type(error).__name__}")
    if isinstance(error, vault_errors.InvalidRequest):
        if _TOO_NEW in message:
            why = f"{what}: the wrapped key is newer than vault's key (vault restored from an older backup?)"
            logger.error("%s", why)
            return KeyServiceUnavailable(why)
        if any(sign in message for sign in _GONE_MESSAGES):
            return KeyDestroyed(f"{what}: {type(error).__name__}")
        return KeyServiceUnavailable(f"{what}: refused ({type(error).__name__})")
    # Sealed (503), refused (403), a wrong mount (404/405), unreachable: fail closed, retryable.
    return KeyServiceUnavailable(f"{what}: {type(error).__name__}")


class VaultTransitProvider:
    """HashiCorp Vault's Transit engine through hvac: token or AppRole auth, TLS verified, bounded retries."""

    name = "vault"

    def __init__(self) -> None:
        self._mount = settings.VAULT_TRANSIT_MOUNT
        self._prefix = settings.VAULT_KEY_PREFIX
        self._client = hvac.Client(
            url=settings.VAULT_ADDR,
            token=settings.VAULT_TOKEN or None,
            verify=settings.VAULT_CACERT or True,
            timeout=math.ceil(settings.VAULT_TIMEOUT_SECONDS),
        )
        # Retries only when the connection could not be made: no request reached Vault, so even a
        # rotate (not idempotent) is safe to send again.
        retry = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.1, allowed_methods=None)
        self._client.adapter.session.mount("https://", HTTPAdapter(max_retries=retry))
        self._client.adapter.session.mount("http://", HTTPAdapter(max_retries=retry))
        self._logged_in = bool(settings.VAULT_TOKEN)

    def _key(self, community: str) -> str:
        return f"{self._prefix}{community}"

    def _signing_key(self, name: str) -> str:
        """``signing-<name>``; refused when ``VAULT_KEY_PREFIX`` would let a community key carry that name."""
        key = f"{_SIGNING_KEY_PREFIX}{signing_key_name(name)}"
        if key.startswith(self._prefix) and re.fullmatch(SLUG_PATTERN, key.removeprefix(self._prefix)):
            raise ValueError(f"signing key {key!r} could be the key of a community under prefix {self._prefix!r}")
        return key

    def _archive_key(self, name: str) -> str:
        """``archive-<name>``; refused, as for signing keys, when it could be the key of a community."""
        key = f"{_ARCHIVE_KEY_PREFIX}{archive_key_name(name)}"
        if key.startswith(self._prefix) and re.fullmatch(SLUG_PATTERN, key.removeprefix(self._prefix)):
            raise ValueError(f"archive key {key!r} could be the key of a community under prefix {self._prefix!r}")
        return key

    def _call(self, what: str, operation: Callable[[], Any], *, unwrapping: bool = False) -> Any:
        """Run one Vault call; with AppRole, a refused (expired) token logs in again once."""
        self._login()
        try:
            try:
                return operation()
            except vault_errors.Forbidden:
                if settings.VAULT_TOKEN:
                    raise
                self._logged_in = False
                self._login()
                return operation()
        except (vault_errors.VaultError, requests.RequestException) as error:
            raise _classified(what, error, unwrapping=unwrapping) from error

    def _login(self) -> None:
        """AppRole login. Its errors are never chained: their text may carry the secret ID (path_login.go)."""
        if self._logged_in:
            return
        refused = ""
        try:
            response = self._client.auth.approle.login(
                role_id=settings.VAULT_ROLE_ID, secret_id=settings.VAULT_SECRET_ID, use_token=False
            )
        except (vault_errors.VaultError, requests.RequestException) as error:
            refused = type(error).__name__  # only its name: raising here would keep it as __context__
        if refused:
            why = f"vault login refused ({refused})"
            logger.error("%s: check VAULT_ROLE_ID and VAULT_SECRET_ID (expired?)", why)
            raise KeyServiceUnavailable(why)
        auth = response.get("auth") if isinstance(response, dict) else None
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise KeyServiceUnavailable("vault answered a login without a token")
        self._client.token = token
        self._logged_in = True

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._client.adapter.post(f"/v1/{self._mount}/{path}", json=body)

    def configure_mount(self) -> None:
        """``disable_upsert``: an encrypt call must never create a key."""
        self._call("configure transit", lambda: self._post("config/keys", {"disable_upsert": True}))

    def create_community_key(self, community: str) -> None:
        """aes256-gcm96, derived, not exportable, no plaintext backup, deletion not allowed."""
        self._create_locked_key(self._key(community), _COMMUNITY)

    def _create_locked_key(self, name: str, kind: _KeySettings) -> Any:
        """Create a key that never leaves Vault, then use it only as a read of it shows it; its read."""
        transit = self._client.secrets.transit
        derived = {"derived": True} if kind.derived else {}
        self._call(
            f"create {kind.what}",
            lambda: transit.create_key(
                name,
                key_type=kind.type,
                exportable=False,
                allow_plaintext_backup=False,
                mount_point=self._mount,
                **derived,
            ),
        )
        read = self._read_key(name, kind)
        if read is None:
            raise KeyServiceUnavailable(f"vault has no {kind.what} {name} after creating it")
        self._adopt(name, read, kind)
        return read

    def _adopt(self, name: str, read: Any, kind: _KeySettings) -> None:
        """Refuse a key whose settings are not ours (naming the setting); turn its deletion off if allowed."""
        data = _data(read)
        unsafe = _unsafe_setting(data, kind)
        if unsafe is not None:
            why = f"vault {kind.what} {name} is refused: {unsafe}"
            logger.error("%s; the service uses it only with its own settings (docs/operations/keys.md)", why)
            raise KeyServiceUnavailable(why)
        if data.get("deletion_allowed") is not False:
            self._call(f"configure {kind.what}", lambda: self._post(f"keys/{name}/config", {"deletion_allowed": False}))

    def generate_wrapped_key(self, community: str) -> WrappedKey:
        """``POST transit/datakey/wrapped/:name`` (the plaintext never travels here)."""
        response = self._call(
            "generate data key",
            lambda: self._client.secrets.transit.generate_data_key(
                self._key(community),
                key_type="wrapped",
                context=_context(community),
                bits=256,
                mount_point=self._mount,
            ),
        )
        return _wrapped(response)

    def unwrap(self, community: str, wrapped: str) -> bytes:
        """``POST transit/decrypt/:name`` with the community as derivation context."""
        response = self._call(
            "unwrap data key",
            lambda: self._client.secrets.transit.decrypt_data(
                self._key(community), ciphertext=wrapped, context=_context(community), mount_point=self._mount
            ),
            unwrapping=True,
        )
        return _unwrapped(response)

    def rotate(self, community: str) -> int:
        """``POST transit/keys/:name/rotate``; the latest version from its answer (or a read, on older Vaults)."""
        return self._rotate(self._key(community))

    def _rotate(self, name: str) -> int:
        transit = self._client.secrets.transit
        response = self._call("rotate key", lambda: transit.rotate_key(name, mount_point=self._mount))
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict) or "latest_version" not in data:
            # Vault before 1.14.0 answers a rotate 204 (hashicorp/vault#20652): read the version instead.
            data = _data(self._call("read key", lambda: transit.read_key(name, mount_point=self._mount)))
        return _latest_version(data)

    def retire_versions_below(self, community: str, version: int) -> None:
        """Older versions refused, then deleted for good: ``min_*_version`` = version, then trim to it.

        ``min_decryption_version`` alone only archives them: lowering it brings
        them back (``keysutil/policy.go@v2.6.2`` ``handleArchiving``). Trim
        needs ``min_encryption_version`` set and no higher than either minimum
        (``path_trim.go@v2.6.2``); encryption keeps using the latest version.
        Both minimums go in one request: hvac 2.4.0's
        ``update_key_configuration`` refuses them equal, which Vault accepts
        (``path_keys_config.go@v2.6.2``: only encryption below decryption is
        refused).
        """
        name = self._key(community)
        minimums = {"min_encryption_version": version, "min_decryption_version": version}
        self._call("retire key versions", lambda: self._post(f"keys/{name}/config", minimums))
        self._call(
            "trim key versions",
            lambda: self._client.secrets.transit.trim_key(name, min_version=version, mount_point=self._mount),
        )

    def destroy_community_key(self, community: str) -> None:
        """Allow deletion, then delete: every version goes. A key already gone is done, once a read says 404."""
        transit, name = self._client.secrets.transit, self._key(community)
        try:
            self._call("allow deletion", lambda: self._post(f"keys/{name}/config", {"deletion_allowed": True}))
            self._call("destroy key", lambda: transit.delete_key(name, mount_point=self._mount))
        except KeyDestroyed:
            if self._read_key(name, _COMMUNITY) is not None:
                raise KeyServiceUnavailable(f"vault said {name} is gone but still has it") from None

    def check_ready(self) -> None:
        """Vault initialised, unsealed and answering: ``/sys/health`` 200, a standby node included.

        A standby forwards every request to the active node, so it serves the
        service as well; ``standbyok`` (and HashiCorp Vault's
        ``perfstandbyok``) make it answer 200 (``http/sys_health.go@v2.6.2``).
        Sealed (503), not initialised (501), a DR secondary (472) or anything
        else is not ready.
        """
        try:
            response = requests.get(
                f"{settings.VAULT_ADDR}/v1/sys/health",
                params={"standbyok": "true", "perfstandbyok": "true"},
                timeout=settings.VAULT_TIMEOUT_SECONDS,
                verify=settings.VAULT_CACERT or True,
            )
        except requests.RequestException as error:
            raise KeyServiceUnavailable("vault unreachable") from error
        if response.status_code != 200:  # noqa: PLR2004 - HTTP status
            raise KeyServiceUnavailable(f"vault not ready ({response.status_code})")

    def _read_key(self, key: str, kind: _KeySettings) -> Any:
        """``GET transit/keys/:name``; None when Vault answers 404 (no such key)."""

        def read() -> Any:
            try:
                return self._client.secrets.transit.read_key(key, mount_point=self._mount)
            except vault_errors.InvalidPath:
                return None

        return self._call(f"read {kind.what}", read)

    def ensure_signing_key(self, name: str) -> None:
        """ed25519, not derived, not exportable, no plaintext backup, deletion not allowed; created when missing."""
        key = self._signing_key(name)
        existing = self._read_key(key, _SIGNING)
        if existing is None:
            with _signing_key_must_exist("create signing key"):
                existing = self._create_locked_key(key, _SIGNING)
        else:
            self._adopt(key, existing, _SIGNING)
        _vault_public_keys(existing)

    def sign(self, name: str, message: bytes) -> Signature:
        """``POST transit/sign/:name`` (pure Ed25519 over the message; the latest version signs)."""
        key = self._signing_key(name)
        with _signing_key_must_exist("sign"):
            response = self._call(
                "sign",
                lambda: self._client.secrets.transit.sign_data(
                    key, hash_input=base64.b64encode(message).decode(), mount_point=self._mount
                ),
            )
        return _vault_signature(response)

    def signing_public_keys(self, name: str) -> dict[int, bytes]:
        """``GET transit/keys/:name``: ``keys.<version>.public_key``."""
        existing = self._read_key(self._signing_key(name), _SIGNING)
        if existing is None:
            raise KeyServiceUnavailable(f"no signing key {name}")
        return _vault_public_keys(existing)

    def rotate_signing_key(self, name: str) -> int:
        """``POST transit/keys/:name/rotate``."""
        key = self._signing_key(name)
        with _signing_key_must_exist("rotate signing key"):
            return self._rotate(key)

    def ensure_archive_key(self, name: str) -> None:
        """aes256-gcm96, derived, not exportable, no plaintext backup, deletion not allowed; created when missing."""
        key = self._archive_key(name)
        existing = self._read_key(key, _ARCHIVE)
        if existing is not None:
            self._adopt(key, existing, _ARCHIVE)
            return
        with _signing_key_must_exist("create archive key"):
            self._create_locked_key(key, _ARCHIVE)

    def generate_archive_data_key(self, name: str, context: str) -> WrappedKey:
        """``POST transit/datakey/wrapped/archive-<name>`` with ``context`` as derivation context."""
        key = self._archive_key(name)
        with _signing_key_must_exist("generate archive data key"):
            response = self._call(
                "generate archive data key",
                lambda: self._client.secrets.transit.generate_data_key(
                    key, key_type="wrapped", context=_context(context), bits=256, mount_point=self._mount
                ),
            )
        return _wrapped(response)

    def unwrap_archive_data_key(self, name: str, context: str, wrapped: str) -> bytes:
        """``POST transit/decrypt/archive-<name>`` with ``context`` (a wrong context or forged key: KeyDestroyed)."""
        key = self._archive_key(name)
        response = self._call(
            "unwrap archive data key",
            lambda: self._client.secrets.transit.decrypt_data(
                key, ciphertext=wrapped, context=_context(context), mount_point=self._mount
            ),
            unwrapping=True,
        )
        return _unwrapped(response)
