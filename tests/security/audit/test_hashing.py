"""An audit entry serialises as RFC 8785 canonical JSON, byte for byte, whatever text its fields hold.

The chain hashes :func:`~security.audit.hashing.canonical_entry`; the reference
is a second, independent implementation (the standard library's ``json``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.canonical import canonical_json
from security.audit.hashing import CHAINED_FIELDS, LIST_FIELDS, canonical_entry
from tests.support.canonical import reference_canonical_json

# Any text an entry may hold: control characters, quotes, backslashes, line separators, astral
# characters (surrogates cannot be encoded as UTF-8 by either).
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


def entries() -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {name: TEXT for name in CHAINED_FIELDS}
    fields |= {name: st.lists(TEXT, max_size=4) for name in LIST_FIELDS}
    fields |= {
        "sequence": st.integers(min_value=1, max_value=2**63 - 1),
        "http_status": st.integers(min_value=0, max_value=599),
        "break_glass": st.booleans(),
    }
    return st.fixed_dictionaries(fields)


@given(entries())
def test_an_entry_serialises_exactly_as_canonical_json_would(entry: dict[str, Any]) -> None:
    assert canonical_json(entry) == reference_canonical_json(entry).encode("utf-8")
    assert canonical_entry(entry) == reference_canonical_json(entry)
