"""Signed checkpoints: the key provider's Ed25519 key vouches for the chain's hash at a sequence.

A checkpoint's statement is canonical JSON::

    {"type": "audit-checkpoint/v1", "log": "<schema>", "community": "<slug>",
     "sequence": n, "entry_hash": "<hex>", "signed_at": "<UTC time>"}

signed as UTF-8 bytes, and published to the witness once it commits
(:mod:`security.audit.witness`). Each log has a signing key of its own in the
key provider (Vault Transit in production: it never leaves Vault): the
platform's log keeps ``AUDIT_SIGNING_KEY_NAME``, a community's is
``AUDIT_SIGNING_KEY_NAME-<slug>`` (:func:`signing_key_for`), so one
community's statement never verifies with another's keys. A community's
published keys (``GET /api/v1/audit/keys/`` on its host, ``audit_keys
--community``) are its own key's versions and, for what was signed before
communities had keys of their own, the shared key's. Each is named by a key id
derived from the key itself, so an auditor needs nothing from us but the
public key file to check a signature. Key ids, reading statements and
checking signatures need no key provider and live with the offline verifier
(:mod:`security.audit.offline`); this module signs.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.canonical import canonical_text
from core.schema import tenant_connection
from security.audit.hashing import format_time
from security.audit.models import AuditEvent, Checkpoint
from security.audit.offline import STATEMENT_TYPE, key_id
from security.audit.sequencer import audit_chain
from security.audit.witness import witness_after_commit
from vault.errors import KeyServiceUnavailable
from vault.providers import Signer, get_provider, signing_key_name

MANIFEST_TYPE = "audit-export-manifest/v1"
PLATFORM_LOG = "public"


def signing_key_for(log: str) -> str:
    """The signing key of ``log``: the platform's is ``AUDIT_SIGNING_KEY_NAME``, a community's is named after it.

    A slug's underscores become hyphens (key names allow none); a slug too long
    for a key name is replaced by 12 hex digits of its SHA-256.
    """
    base = settings.AUDIT_SIGNING_KEY_NAME
    if log == PLATFORM_LOG:
        return base
    try:
        return signing_key_name(f"{base}-{log.replace('_', '-')}")
    except ValueError:
        return signing_key_name(f"{base}-{hashlib.sha256(log.encode('ascii')).hexdigest()[:12]}")


def current_log() -> str:
    """The log of the connection's schema (a community's log is named after its slug, the platform's ``public``)."""
    return str(tenant_connection().schema_name)


class _PublishedKeys:
    """The provider's public keys by key name and version, fetched once and again on a miss."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, dict[int, bytes]] = {}
        self._ensured: set[str] = set()

    def ensure(self, name: str) -> None:
        """Create the signing key ``name`` in the provider if it has none (once per process)."""
        if name not in self._ensured:
            signer: Signer = get_provider()
            signer.ensure_signing_key(name)
            self._ensured.add(name)

    def _refresh(self, name: str) -> dict[int, bytes]:
        self.ensure(name)
        signer: Signer = get_provider()
        keys = dict(signer.signing_public_keys(name))
        with self._lock:
            self._by_name[name] = keys
        return keys

    def by_version(self, name: str, version: int) -> bytes:
        """The public key of ``name`` at ``version``."""
        key = self._by_name.get(name, {}).get(version) or self._refresh(name).get(version)
        if key is None:
            raise KeyServiceUnavailable(f"the audit signing key {name} has no version {version}")
        return key

    def all(self, name: str) -> dict[int, bytes]:
        """Every version of ``name``."""
        return self._refresh(name)

    def for_log(self, log: str) -> list[tuple[str, int, bytes]]:
        """What verifies ``log``'s statements: its own key's versions, then (communities) the shared key's."""
        names = [signing_key_for(log)]
        if log != PLATFORM_LOG:
            names.append(settings.AUDIT_SIGNING_KEY_NAME)  # statements signed before communities had keys
        return [(name, version, raw) for name in names for version, raw in sorted(self.all(name).items())]

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._by_name, self._ensured = {}, set()


published_keys = _PublishedKeys()


@dataclass(frozen=True)
class Signed:
    """A signed text: the text, the key id and the base64 signature."""

    text: str
    key_id: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form used in manifests."""
        return {"statement": self.text, "key_id": self.key_id, "signature": self.signature}


def sign_document(document: Mapping[str, Any], log: str | None = None) -> Signed:
    """Sign the canonical JSON of ``document`` with the latest version of ``log``'s signing key (default: current)."""
    name = signing_key_for(log or current_log())
    text = canonical_text(dict(document))
    published_keys.ensure(name)
    provider: Signer = get_provider()  # checkpoints need the signing job only
    signature = provider.sign(name, text.encode("utf-8"))
    public = published_keys.by_version(name, signature.key_version)
    return Signed(text, key_id(public), base64.b64encode(signature.signature).decode("ascii"))


def public_keys(log: str | None = None) -> dict[str, Ed25519PublicKey]:
    """Every published public key that verifies ``log``'s statements (default: current), by key id."""
    keys = published_keys.for_log(log or current_log())
    return {key_id(raw): Ed25519PublicKey.from_public_bytes(raw) for _, _, raw in keys}


def public_keys_pem(log: str | None = None) -> str:
    """``log``'s published keys as concatenated PEM blocks (SubjectPublicKeyInfo), its own first, oldest first."""
    blocks = []
    for name, version, raw in published_keys.for_log(log or current_log()):
        key = Ed25519PublicKey.from_public_bytes(raw)
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        blocks.append(f"# key_id {key_id(raw)} version {version} name {name}\n{pem.decode('ascii')}")
    return "".join(blocks)


def statement_document(*, log: str, sequence: int, hash_: str, signed_at: str) -> dict[str, Any]:
    """The document a checkpoint signs (a community's log is named after its slug)."""
    return {
        "type": STATEMENT_TYPE,
        "log": log,
        "community": log,
        "sequence": sequence,
        "entry_hash": hash_,
        "signed_at": signed_at,
    }


def checkpoint_create() -> Checkpoint | None:
    """Chain what is staged, then sign the head, unless a checkpoint already covers it (None: empty chain)."""
    audit_chain()
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    if head is None:
        return None
    if Checkpoint.objects.filter(sequence=head).exists():
        witness_after_commit()  # nothing new to sign: publish what an earlier run could not
    return checkpoint_at(head)


def checkpoint_at(sequence: int) -> Checkpoint:
    """The checkpoint at ``sequence``, signing one if there is none yet."""
    existing = Checkpoint.objects.filter(sequence=sequence).first()
    if existing is not None:
        return existing
    hash_ = AuditEvent.objects.values_list("entry_hash", flat=True).get(sequence=sequence)
    signed_at = timezone.now()
    signed = sign_document(
        statement_document(log=current_log(), sequence=sequence, hash_=hash_, signed_at=format_time(signed_at))
    )
    try:
        with transaction.atomic():
            checkpoint = Checkpoint.objects.create(
                sequence=sequence,
                entry_hash=hash_,
                signed_at=signed_at,
                key_id=signed.key_id,
                statement=signed.text,
                signature=signed.signature,
            )
    except IntegrityError:  # another process signed the same sequence meanwhile
        return Checkpoint.objects.get(sequence=sequence)
    witness_after_commit()
    return checkpoint


def checkpoint_signed(checkpoint: Checkpoint) -> Signed:
    """A stored checkpoint as a signed text."""
    return Signed(checkpoint.statement, checkpoint.key_id, checkpoint.signature)
