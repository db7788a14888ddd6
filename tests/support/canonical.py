"""An independent canonical JSON, written the way an auditor's own tool would (the standard library only).

Tests hold :mod:`core.canonical` to it, and check signatures with it, so the
service's format is proven against a second implementation rather than itself.
"""

from __future__ import annotations

import json
from typing import Any


def reference_canonical_json(document: Any) -> str:
    """JSON with sorted keys and no whitespace (RFC 8785 for strings, integers, booleans, lists, objects)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
