"""The one canonical JSON: what the audit chain hashes and what checkpoints, manifests and digests sign.

Sorted keys, no whitespace, no escaping beyond JSON's own, UTF-8 (RFC 8785 for
the types used here: strings, integers, booleans, ``None``, lists and objects
of them). Made by orjson, because the chain hashes, exports and verifies
millions of entries; every signed or hashed document in the project goes
through :func:`canonical_json`, so there is one format to verify, not two to
keep equal. Where orjson is not installed (an auditor's machine running the
offline verifier with the standard library and ``cryptography`` only), the
standard library's ``json`` writes the same bytes for these types; the
property tests hold both to an independent reference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the service always has it; the offline verifier may not
    orjson = None  # type: ignore[assignment]  # the standard library writes the same bytes


def canonical_json(document: Any) -> bytes:
    """The canonical JSON of ``document``, as UTF-8 bytes.

    Raises:
        TypeError: a value JSON cannot hold (a set, a non-string key, a lone surrogate, an integer over 64 bits).
    """
    if orjson is not None:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return standard_canonical_json(document)


def standard_canonical_json(document: Any) -> bytes:
    """:func:`canonical_json` by the standard library alone (what the offline verifier uses without orjson).

    Raises:
        TypeError: a value JSON cannot hold (as orjson would refuse it: a set, a non-string key, a lone surrogate).
    """
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as error:
        raise TypeError(str(error)) from error


def canonical_text(document: Any) -> str:
    """:func:`canonical_json` as text."""
    return canonical_json(document).decode("utf-8")


def digest(document: Any) -> str:
    """SHA-256 of the canonical JSON, as ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()
