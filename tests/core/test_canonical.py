"""The one canonical JSON (:mod:`core.canonical`) is RFC 8785's, byte for byte, for all hashes and signatures cover.

The reference is a second, independent implementation (the standard library's
``json``), as an auditor's own tool would be. The audit chain's entries, which
the chain hashes with it, are checked in ``tests/security/audit/test_hashing.py``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.canonical import canonical_json, canonical_text, digest, standard_canonical_json
from tests.support.canonical import reference_canonical_json

# Any text a document may hold: control characters, quotes, backslashes, line separators, astral
# characters (surrogates cannot be encoded as UTF-8 by either).
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)
SCALARS = st.one_of(TEXT, st.booleans(), st.none(), st.integers(-(2**63), 2**63 - 1))


@given(st.dictionaries(TEXT, st.one_of(TEXT, st.lists(TEXT), st.booleans(), st.integers(-(2**63), 2**63 - 1))))
def test_keys_sort_by_code_point_as_canonical_json_sorts_them(document: dict[str, Any]) -> None:
    assert canonical_json(document) == reference_canonical_json(document).encode("utf-8")


@given(
    st.recursive(
        SCALARS,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
        max_leaves=20,
    )
)
def test_nested_documents_like_manifests_and_policy_inputs_serialise_as_rfc_8785(document: Any) -> None:
    assert canonical_text(document) == reference_canonical_json(document)
    # What the offline verifier writes where orjson is not installed: the same bytes.
    assert standard_canonical_json(document) == canonical_json(document)


def test_the_input_digest_is_the_sha256_of_the_canonical_text() -> None:
    document = {"b": [1, "x"], "a": {"é": None}}

    assert digest(document) == "sha256:" + hashlib.sha256(reference_canonical_json(document).encode()).hexdigest()


def test_a_value_canonical_json_cannot_hold_is_refused_not_approximated() -> None:
    with pytest.raises(TypeError):
        canonical_json({"sequence": 2**64})
    with pytest.raises(TypeError):
        canonical_json({1: "a key that is not a string"})
