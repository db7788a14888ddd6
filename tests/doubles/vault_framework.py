"""The Vault double's request framework: routes, field schemas, replies, as OpenBao v2.6.2's logical layer has them.

- A route is a regular expression over the path inside its mount, the
  operations it serves, and its field schema (``sdk/framework/path.go``).
- A request field the schema does not know is **ignored, with a warning**
  "Endpoint ignored these unrecognized parameters: [a b]"
  (``sdk/framework/backend.go@v2.6.2:222-303``); a known field of the wrong
  type is refused, 400 "Field validation failed: error converting input for
  field ..." (``field_data.go`` ``Validate``).
- Replies: an error is ``{"errors": [text]}``, 400 when the backend answered
  an error response (``sdk/logical/response_util.go@v2.6.2``
  ``RespondErrorCommon``: "If we actually have a response, start out with bad
  request"); a read that finds nothing is 404 ``{"errors": []}``; a write with
  nothing to say is 204; anything else is 200 in Vault's envelope.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_BOOL_WORDS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
_DURATION_RE = re.compile(r"(\d+)([smhd]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# sdk/framework GenericNameRegex: a word character, then word characters, "-", "." or "@", ending in a word character.
NAME = r"\w(?:[\w\-.@]*\w)?"


class FieldError(ValueError):
    """A value that does not convert to its field's type."""


@dataclass
class Reply:
    """What the double answers: a status and either Vault's envelope parts or its error list."""

    status: int
    data: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    auth: dict[str, Any] | None = None
    errors: list[str] | None = None
    raw: dict[str, Any] | None = None

    def body(self) -> dict[str, Any] | None:
        """The JSON body (None for 204), in the shape ``http/logical.go`` ``respondLogical`` writes."""
        if self.raw is not None:
            return self.raw
        if self.errors is not None:
            return {"errors": self.errors}
        if self.status == 204:
            return None
        return {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": self.data,
            "wrap_info": None,
            "warnings": self.warnings or None,
            "auth": self.auth,
        }


def answer(data: dict[str, Any] | None = None, *, warnings: list[str] | None = None) -> Reply:
    """200 with ``data`` (and warnings), or 204 when there is neither."""
    if data is None and not warnings:
        return Reply(204)
    return Reply(200, data=data, warnings=list(warnings or []))


def refuse(message: str, status: int = 400) -> Reply:
    """An error response: 400 unless the cause maps to another status."""
    return Reply(status, errors=[message])


def not_found() -> Reply:
    """A read that found nothing (``RespondErrorCommon``: ReadOperation with a nil response)."""
    return Reply(404, errors=[])


@dataclass
class Call:
    """One request as a route's handler sees it: the operation, the captures and the validated fields."""

    operation: str
    path: str
    captures: dict[str, str]
    data: dict[str, Any]
    client: str
    token_policies: tuple[str, ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        """A field from the URL captures first, then the request data (the URL wins, as in Vault)."""
        if name in self.captures:
            return self.captures[name]
        return self.data.get(name, default)

    def has(self, name: str) -> bool:
        """Whether the request set ``name`` (``FieldData.GetOk``)."""
        return name in self.captures or name in self.data


Handler = Callable[[Any, Call], Reply]


@dataclass(frozen=True)
class Route:
    """A path pattern inside a mount, its handlers by operation, its fields, and an optional existence check."""

    pattern: str
    operations: Mapping[str, Handler]
    fields: Mapping[str, str]
    exists: Callable[[Any, Call], bool] | None = None
    unauthenticated: bool = False

    def match(self, relative: str) -> dict[str, str] | None:
        """The named captures when ``relative`` is this route's path."""
        found = re.fullmatch(self.pattern, relative)
        return None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}


def validated(route: Route, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The request fields converted to their types, and the warning for those the route does not know."""
    ignored = sorted(name for name in data if name not in route.fields)
    converted = {
        name: _convert(route.fields[name], name, value) for name, value in data.items() if name in route.fields
    }
    warnings = [f"Endpoint ignored these unrecognized parameters: [{' '.join(ignored)}]"] if ignored else []
    return converted, warnings


def _convert(kind: str, name: str, value: Any) -> Any:
    try:
        return _CONVERTERS[kind](value)
    except (FieldError, TypeError, ValueError) as error:
        raise FieldError(f'Field validation failed: error converting input for field "{name}": {error}') from error


def _string(value: Any) -> str:
    if isinstance(value, list | dict):
        raise FieldError(f"expected a string, got {type(value).__name__}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.lower()]
    raise FieldError(f"cannot parse {value!r} as bool")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError(f"cannot parse {value!r} as int")
    return int(value)


def duration_seconds(value: Any) -> int:
    """``parseutil.ParseDurationSecond``: a number of seconds, or "15m", "1h", "30s", "2d"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = _DURATION_RE.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if found is None:
        raise FieldError(f"cannot parse {value!r} as a duration")
    return int(found.group(1)) * _DURATION_UNITS[found.group(2)]


def _comma_strings(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise FieldError(f"cannot parse {value!r} as a list of strings")
    return [item.strip() for item in items if item.strip()]


def _kv_pairs(value: Any) -> dict[str, str]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(item, str) and "=" in item for item in value):
        return dict(item.split("=", 1) for item in value)
    raise FieldError(f"cannot parse {value!r} as key=value pairs")


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldError(f"expected a map, got {type(value).__name__}")
    return value


def _slice(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise FieldError(f"expected a list, got {type(value).__name__}")
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "bool": _bool,
    "int": _int,
    "duration": duration_seconds,
    "comma_strings": _comma_strings,
    "kv_pairs": _kv_pairs,
    "map": _mapping,
    "slice": _slice,
}
