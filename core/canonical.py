"""The one canonical JSON: what the audit chain hashes and what checkpoints, manifests and digests sign.

Sorted keys, no whitespace, no escaping beyond JSON's own, UTF-8 (RFC 8785 for
the types used here: strings, integers, booleans, ``None``, lists and objects
of them). Made by orjson, because the chain hashes, exports and verifies
millions of entries; every signed or hashed document in the project goes
through :func:`canonical_json`, so there is one format to verify, not two to
keep equal.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def canonical_json(document: Any) -> bytes:
    """The canonical JSON of ``document``, as UTF-8 bytes.

    Raises:
        TypeError: a value JSON cannot hold (a set, a non-string key, a lone surrogate, an integer over 64 bits).
    """
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def canonical_text(document: Any) -> str:
    """:func:`canonical_json` as text."""
    return canonical_json(document).decode("utf-8")


def digest(document: Any) -> str:
    """SHA-256 of the canonical JSON, as ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()
