"""Export file formats: JSON Lines, CSV and a FHIR R4 Bundle of AuditEvent resources.

Each format carries every chained field of every entry unchanged, so the
chain can be checked from the file alone, and each has a reader that gives
the entries back. Writers and readers stream: one entry in memory at a time.

- ``jsonl``: one canonical JSON object per line.
- ``csv``: a header, then one row per entry; lists as JSON; a value that a
  spreadsheet would run as a formula (``= + - @``, tab, CR) or that starts
  with ``'`` gets a leading ``'``, which the reader takes off again.
- ``fhir``: a FHIR R4 (4.0.1) Bundle of type ``collection``, one entry per
  line; each AuditEvent carries the canonical entry in an extension, and the
  reader checks that the resource is exactly what that entry renders to. The
  Bundle names its rendering (``meta.tag``); the reader knows every rendering
  an export was ever written in, so an old file verifies as it did.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

try:
    from orjson import loads
except ImportError:  # pragma: no cover - the offline verifier on an auditor's machine: the standard library's
    from json import loads  # type: ignore[assignment]  # the same call for the text it reads

from core.canonical import canonical_json
from security.audit.hashing import ENTRY_FIELDS, LIST_FIELDS, canonical_entry

CHAIN_EXTENSION = "urn:compliance-gateway:audit-chain"
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r", "'")
_INT_FIELDS = frozenset({"sequence", "http_status"})
_ENTRY_KEYS = frozenset(ENTRY_FIELDS)
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_CRUD = {"read": "R", "list": "R", "download": "R", "create": "C", "update": "U", "delete": "D"}


class FormatError(ValueError):
    """The file is not a well-formed export of its format."""


# --- JSON Lines ---------------------------------------------------------------------


def jsonl_lines(entries: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """One canonical JSON object per entry."""
    for entry in entries:
        yield canonical_json(dict(entry)).decode("utf-8") + "\n"


def jsonl_read(handle: IO[str]) -> Iterator[dict[str, Any]]:
    """The entries of a JSON Lines export."""
    for number, line in enumerate(handle, start=1):
        if line.strip():
            try:
                yield _entry(loads(line))
            except (ValueError, FormatError) as error:  # a JSON decode error is a ValueError
                raise FormatError(f"line {number}: {error}") from error


def _entry(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.keys() != _ENTRY_KEYS:
        raise FormatError("not an audit entry")
    return document


# --- CSV ----------------------------------------------------------------------------


def _csv_cell(name: str, value: Any) -> str:
    if name in LIST_FIELDS:
        return canonical_json(value).decode("utf-8")
    if isinstance(value, bool):
        return "true" if value else "false"
    return spreadsheet_safe(str(value))


def spreadsheet_safe(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula (or it starts with ``'``)."""
    return "'" + text if text.startswith(_FORMULA_LEAD) else text


def _csv_value(name: str, text: str) -> Any:
    if name in LIST_FIELDS:
        return loads(text)
    if name in _INT_FIELDS:
        return int(text)
    if name == "break_glass":
        if text not in ("true", "false"):
            raise FormatError(f"break_glass is {text!r}")
        return text == "true"
    return text[1:] if text.startswith("'") else text


def csv_row(values: Iterable[str]) -> str:
    """One CSV line."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def csv_lines(entries: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A header, then one row per entry."""
    yield csv_row(ENTRY_FIELDS)
    for entry in entries:
        yield csv_row(_csv_cell(name, entry[name]) for name in ENTRY_FIELDS)


def csv_read(handle: IO[str]) -> Iterator[dict[str, Any]]:
    """The entries of a CSV export."""
    reader = csv.reader(handle)
    if tuple(next(reader, ())) != ENTRY_FIELDS:
        raise FormatError("the header is not the audit export's")
    for row in reader:
        if len(row) != len(ENTRY_FIELDS):
            raise FormatError(f"line {reader.line_num}: {len(row)} columns")
        try:
            yield {name: _csv_value(name, text) for name, text in zip(ENTRY_FIELDS, row, strict=True)}
        except ValueError as error:  # orjson.JSONDecodeError included
            raise FormatError(f"line {reader.line_num}: {error}") from error


# --- FHIR R4 ------------------------------------------------------------------------
#
# Rendering 2 (this one) is valid FHIR R4 (4.0.1): no empty string, array or object anywhere (FHIR JSON has
# none: ele-1), and resource ids of FHIR's own alphabet. Rendering 1, what exports made before it hold, wrote
# ``outcomeDesc: ""`` for an event without reasons, ``role: []`` for an actor without roles, ``entity: []``
# for an event about nothing in particular, and ``_`` of a community's slug into ids: its reader stays, frozen,
# so those files still verify. The Bundle names its rendering in ``meta.tag``; a Bundle without one is 1.

RENDERING_TAG = "urn:compliance-gateway:audit-export-rendering"
RENDERING = "2"
_ENTRY_OPENING = ',"entry":[\n'
_AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_BREAK_GLASS = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _identifier(system: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return _without_empty(value)
    if isinstance(value, list):
        return [item for item in map(_pruned, value) if not _empty(item)]
    return value


def _without_empty(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with every empty string, array and object left out, at any depth (FHIR JSON has none)."""
    pruned = {key: _pruned(value) for key, value in document.items()}
    return {key: value for key, value in pruned.items() if not _empty(value)}


def fhir_id(log: str, sequence: int) -> str:
    """The AuditEvent's id: FHIR's alphabet is letters, digits, ``-`` and ``.``, so a slug's ``_`` becomes ``.``.

    A slug has no ``.`` of its own, so two events never share an id.
    """
    return f"{log.replace('_', '.')}-{sequence}"


def _chain_extension(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "url": CHAIN_EXTENSION,
        "extension": [
            {"url": "entry", "valueString": canonical_entry(entry)},
            {"url": "previousHash", "valueString": entry["previous_hash"]},
            {"url": "entryHash", "valueString": entry["entry_hash"]},
        ],
    }


def _entities(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    entities = []
    if entry["resource_type"]:
        what = _identifier(f"urn:compliance-gateway:{entry['resource_type']}", entry["resource_id"] or "*")
        entities.append({"what": what, "type": {"code": "2", "system": _ENTITY_TYPE}})
    for pseudonym in entry["participant_pseudonyms"]:
        entities.append(
            {
                "what": _identifier("urn:compliance-gateway:pseudonym", pseudonym),
                "type": {"code": "1", "system": _ENTITY_TYPE},
            }
        )
    return entities


def fhir_resource(entry: Mapping[str, Any], log: str) -> dict[str, Any]:
    """An entry as a FHIR R4 AuditEvent (rendering 2); the extension carries the entry itself, canonically."""
    purposes = [_coding("urn:compliance-gateway:purpose", entry["purpose"])] if entry["purpose"] else []
    if entry["break_glass"]:
        purposes.append(_coding(_BREAK_GLASS, "BTG"))
    agent = {
        "who": _identifier("urn:compliance-gateway:user", entry["actor_id"] or "anonymous"),
        "requestor": True,
        "role": [_coding("urn:compliance-gateway:role", role) for role in entry["actor_roles"]],
        "network": {"address": entry["client_ip"], "type": "2"} if entry["client_ip"] else {},
    }
    return _without_empty(
        {
            "resourceType": "AuditEvent",
            "id": fhir_id(log, entry["sequence"]),
            "type": {"system": _AUDIT_EVENT_TYPE, "code": "rest"},
            "subtype": [{"system": "urn:compliance-gateway:action", "code": entry["action"]}],
            "action": _CRUD.get(str(entry["action"]).rsplit(".", 1)[-1], "E"),
            "recorded": entry["occurred_at"],
            "outcome": "0" if entry["outcome"] == "allow" else "4",
            "outcomeDesc": ", ".join(reason for reason in entry["reasons"] if reason),
            "purposeOfEvent": purposes,
            "agent": [agent],
            "source": {"site": log, "observer": {"display": "compliance-gateway"}},
            "entity": _entities(entry),
            "extension": [_chain_extension(entry)],
        }
    )


def _text(document: Any) -> str:
    return canonical_json(document).decode("utf-8")


def fhir_lines(entries: Iterable[Mapping[str, Any]], *, log: str, timestamp: str) -> Iterator[str]:
    """A Bundle (type collection, rendering 2), one entry per line, so it streams both ways."""
    tag = {"system": RENDERING_TAG, "code": RENDERING}
    yield _text({"resourceType": "Bundle", "meta": {"tag": [tag]}, "type": "collection", "timestamp": timestamp})[:-1]
    yield _ENTRY_OPENING
    separator = ""
    for entry in entries:
        resource = fhir_resource(entry, log)
        yield separator + _text({"fullUrl": f"urn:audit:{resource['id']}", "resource": resource}) + "\n"
        separator = ","
    yield "]}\n"


# Rendering 1, frozen: exactly what exports written before rendering 2 hold, so that they still verify.


def _agent_1(entry: Mapping[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": "urn:compliance-gateway:user", "value": entry["actor_id"] or "anonymous"}},
        "requestor": True,
        "role": [_coding("urn:compliance-gateway:role", role) for role in entry["actor_roles"]],
    }
    if entry["client_ip"]:
        agent["network"] = {"address": entry["client_ip"], "type": "2"}
    return agent


def _entities_1(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    entities = []
    if entry["resource_type"]:
        what = {"system": f"urn:compliance-gateway:{entry['resource_type']}", "value": entry["resource_id"] or "*"}
        entities.append({"what": {"identifier": what}, "type": {"code": "2", "system": _ENTITY_TYPE}})
    for pseudonym in entry["participant_pseudonyms"]:
        what = {"system": "urn:compliance-gateway:pseudonym", "value": pseudonym}
        entities.append({"what": {"identifier": what}, "type": {"code": "1", "system": _ENTITY_TYPE}})
    return entities


def _purposes_1(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    purposes = [_coding("urn:compliance-gateway:purpose", entry["purpose"])] if entry["purpose"] else []
    if entry["break_glass"]:
        purposes.append(_coding(_BREAK_GLASS, "BTG"))
    return purposes


def fhir_resource_1(entry: Mapping[str, Any], log: str) -> dict[str, Any]:
    """An entry as rendering 1 wrote it (not valid FHIR for an entry with empty reasons, roles or entities)."""
    verb = str(entry["action"]).rsplit(".", 1)[-1]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"{log}-{entry['sequence']}",
        "type": {"system": _AUDIT_EVENT_TYPE, "code": "rest"},
        "subtype": [{"system": "urn:compliance-gateway:action", "code": entry["action"]}],
        "action": _CRUD.get(verb, "E"),
        "recorded": entry["occurred_at"],
        "outcome": "0" if entry["outcome"] == "allow" else "4",
        "outcomeDesc": ", ".join(entry["reasons"]),
        "agent": [_agent_1(entry)],
        "source": {"site": log, "observer": {"display": "compliance-gateway"}},
        "entity": _entities_1(entry),
        "extension": [_chain_extension(entry)],
    }
    purposes = _purposes_1(entry)
    if purposes:
        resource["purposeOfEvent"] = purposes
    return resource


_RENDERINGS: dict[str, Callable[[Mapping[str, Any], str], dict[str, Any]]] = {
    "1": fhir_resource_1,
    RENDERING: fhir_resource,
}


def _bundle_opening(header: str) -> dict[str, Any]:
    """The Bundle's own elements, from its first line (FormatError when it is not an export's)."""
    try:
        document = loads(header.removesuffix(_ENTRY_OPENING) + "}") if header.endswith(_ENTRY_OPENING) else None
    except ValueError:
        document = None
    if (
        not isinstance(document, dict)
        or document.get("resourceType") != "Bundle"
        or document.get("type") != "collection"
    ):
        raise FormatError("not an audit export Bundle")
    return document


def _rendering(header: str) -> Callable[[Mapping[str, Any], str], dict[str, Any]]:
    """How the Bundle whose first line is ``header`` renders its entries (FormatError when it is not an export)."""
    meta = _bundle_opening(header).get("meta", {})
    try:
        tags = [str(tag["code"]) for tag in meta.get("tag", []) if tag.get("system") == RENDERING_TAG]
    except (AttributeError, KeyError, TypeError) as error:
        raise FormatError("the Bundle's meta is not an audit export's") from error
    version = tags[0] if tags else "1"
    if version not in _RENDERINGS or len(tags) > 1:
        raise FormatError(f"an audit export Bundle of rendering {version!r}, which this verifier does not know")
    return _RENDERINGS[version]


def _fhir_entry(document: Any, log: str, render: Callable[[Mapping[str, Any], str], dict[str, Any]]) -> dict[str, Any]:
    try:
        chain = document["resource"]["extension"][0]
        parts = {item["url"]: item["valueString"] for item in chain["extension"]}
        entry = dict(loads(parts["entry"]), previous_hash=parts["previousHash"], entry_hash=parts["entryHash"])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise FormatError("an AuditEvent without its chain extension") from error
    entry = _entry(entry)
    if document["resource"] != render(entry, log):
        # The readable part of the resource was changed: report it at the entry's own sequence.
        entry = dict(entry, entry_hash="altered:" + str(entry["entry_hash"]))
    return entry


def fhir_read(handle: IO[str], *, log: str) -> Iterator[dict[str, Any]]:
    """The entries of a FHIR export (either rendering), each checked against the resource that carries it."""
    render = _rendering(handle.readline())
    for number, line in enumerate(handle, start=2):
        text = line.strip()
        if text == "]}":
            return
        try:
            yield _fhir_entry(loads(text.removeprefix(",")), log, render)
        except ValueError as error:
            raise FormatError(f"line {number}: {error}") from error
    raise FormatError("the Bundle is not closed")


def write_lines(lines: Iterable[str], handle: IO[bytes], digest: Any) -> int:
    """Write text lines as UTF-8 into ``handle`` and ``digest``; return the byte count."""
    size = 0
    for line in lines:
        data = line.encode("utf-8")
        handle.write(data)
        digest.update(data)
        size += len(data)
    return size
