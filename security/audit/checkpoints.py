"""Signed checkpoints: the key provider's Ed25519 key vouches for the chain's hash at a sequence.

A checkpoint's statement is canonical JSON::

    {"type": "audit-checkpoint/v1", "log": "<schema>", "sequence": n,
     "entry_hash": "<hex>", "signed_at": "<UTC time>"}

signed as UTF-8 bytes. The signing key lives in the key provider (Vault
Transit in production: it never leaves Vault); its public keys are
published (``GET /api/v1/audit/keys/``, ``audit_keys``), each named by a key
id derived from the key itself, so an auditor needs nothing from us but the
public key file to check a signature. Key ids, reading statements and
checking signatures need no key provider and live with the offline verifier
(:mod:`security.audit.offline`); this module signs.
"""

from __future__ import annotations

import base64
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
from vault.errors import KeyServiceUnavailable
from vault.providers import Signer, get_provider

MANIFEST_TYPE = "audit-export-manifest/v1"


class _PublishedKeys:
    """The provider's public keys by key id and by version, fetched once and again on a miss."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[int, bytes] = {}
        self._ensured = False

    def ensure(self) -> None:
        """Create the signing key in the provider if it has none (once per process)."""
        if not self._ensured:
            signer: Signer = get_provider()
            signer.ensure_signing_key(settings.AUDIT_SIGNING_KEY_NAME)
            self._ensured = True

    def _refresh(self) -> dict[int, bytes]:
        self.ensure()
        signer: Signer = get_provider()
        keys = signer.signing_public_keys(settings.AUDIT_SIGNING_KEY_NAME)
        with self._lock:
            self._by_version = dict(keys)
        return keys

    def by_version(self, version: int) -> bytes:
        key = self._by_version.get(version) or self._refresh().get(version)
        if key is None:
            raise KeyServiceUnavailable(f"the audit signing key has no version {version}")
        return key

    def all(self) -> dict[int, bytes]:
        return self._refresh()

    def clear(self) -> None:
        with self._lock:
            self._by_version, self._ensured = {}, False


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


def sign_document(document: Mapping[str, Any]) -> Signed:
    """Sign the canonical JSON of ``document`` with the latest audit signing key."""
    text = canonical_text(dict(document))
    published_keys.ensure()
    provider: Signer = get_provider()  # checkpoints need the signing job only
    signature = provider.sign(settings.AUDIT_SIGNING_KEY_NAME, text.encode("utf-8"))
    public = published_keys.by_version(signature.key_version)
    return Signed(text, key_id(public), base64.b64encode(signature.signature).decode("ascii"))


def public_keys() -> dict[str, Ed25519PublicKey]:
    """Every published audit public key by key id."""
    return {key_id(raw): Ed25519PublicKey.from_public_bytes(raw) for raw in published_keys.all().values()}


def public_keys_pem() -> str:
    """The published keys as concatenated PEM blocks (SubjectPublicKeyInfo), oldest first."""
    keys = published_keys.all()
    blocks = []
    for version in sorted(keys):
        key = Ed25519PublicKey.from_public_bytes(keys[version])
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        blocks.append(f"# key_id {key_id(keys[version])} version {version}\n{pem.decode('ascii')}")
    return "".join(blocks)


def statement_document(*, log: str, sequence: int, hash_: str, signed_at: str) -> dict[str, Any]:
    """The document a checkpoint signs."""
    return {"type": STATEMENT_TYPE, "log": log, "sequence": sequence, "entry_hash": hash_, "signed_at": signed_at}


def checkpoint_create() -> Checkpoint | None:
    """Chain what is staged, then sign the head, unless a checkpoint already covers it (None: empty chain)."""
    audit_chain()
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    return None if head is None else checkpoint_at(head)


def checkpoint_at(sequence: int) -> Checkpoint:
    """The checkpoint at ``sequence``, signing one if there is none yet."""
    existing = Checkpoint.objects.filter(sequence=sequence).first()
    if existing is not None:
        return existing
    hash_ = AuditEvent.objects.values_list("entry_hash", flat=True).get(sequence=sequence)
    signed_at = timezone.now()
    signed = sign_document(
        statement_document(
            log=tenant_connection().schema_name, sequence=sequence, hash_=hash_, signed_at=format_time(signed_at)
        )
    )
    try:
        with transaction.atomic():
            return Checkpoint.objects.create(
                sequence=sequence,
                entry_hash=hash_,
                signed_at=signed_at,
                key_id=signed.key_id,
                statement=signed.text,
                signature=signed.signature,
            )
    except IntegrityError:  # another process signed the same sequence meanwhile
        return Checkpoint.objects.get(sequence=sequence)


def checkpoint_signed(checkpoint: Checkpoint) -> Signed:
    """A stored checkpoint as a signed text."""
    return Signed(checkpoint.statement, checkpoint.key_id, checkpoint.signature)
