"""Export file formats: JSON Lines, CSV and a FHIR R4 Bundle of AuditEvent resources.

Each format carries every chained field of every entry unchanged, so the
chain can be checked from the file alone, and each has a reader that gives
the entries back. Writers and readers stream: one entry in memory at a time.

- ``jsonl``: one canonical JSON object per line.
- ``csv``: a header, then one row per entry; lists as JSON; a value that a
  spreadsheet would run as a formula (``= + - @``, tab, CR) or that starts
  with ``'`` gets a leading ``'``, which the reader takes off again.
- ``fhir``: a Bundle of type ``collection``, one entry per line; each
  AuditEvent carries the canonical entry in an extension, and the reader
  checks that the resource is exactly what that entry renders to.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
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


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _agent(entry: Mapping[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": "urn:compliance-gateway:user", "value": entry["actor_id"] or "anonymous"}},
        "requestor": True,
        "role": [_coding("urn:compliance-gateway:role", role) for role in entry["actor_roles"]],
    }
    if entry["client_ip"]:
        agent["network"] = {"address": entry["client_ip"], "type": "2"}
    return agent


def _entities(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    entities = []
    if entry["resource_type"]:
        what = {"system": f"urn:compliance-gateway:{entry['resource_type']}", "value": entry["resource_id"] or "*"}
        entities.append({"what": {"identifier": what}, "type": {"code": "2", "system": _ENTITY_TYPE}})
    for pseudonym in entry["participant_pseudonyms"]:
        what = {"system": "urn:compliance-gateway:pseudonym", "value": pseudonym}
        entities.append({"what": {"identifier": what}, "type": {"code": "1", "system": _ENTITY_TYPE}})
    return entities


def _purposes(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    purposes = [_coding("urn:compliance-gateway:purpose", entry["purpose"])] if entry["purpose"] else []
    if entry["break_glass"]:
        purposes.append(_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "BTG"))
    return purposes


def fhir_resource(entry: Mapping[str, Any], log: str) -> dict[str, Any]:
    """An entry as a FHIR R4 AuditEvent; the extension carries the entry itself, canonically."""
    verb = str(entry["action"]).rsplit(".", 1)[-1]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"{log}-{entry['sequence']}",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "urn:compliance-gateway:action", "code": entry["action"]}],
        "action": _CRUD.get(verb, "E"),
        "recorded": entry["occurred_at"],
        "outcome": "0" if entry["outcome"] == "allow" else "4",
        "outcomeDesc": ", ".join(entry["reasons"]),
        "agent": [_agent(entry)],
        "source": {"site": log, "observer": {"display": "compliance-gateway"}},
        "entity": _entities(entry),
        "extension": [
            {
                "url": CHAIN_EXTENSION,
                "extension": [
                    {"url": "entry", "valueString": canonical_entry(entry)},
                    {"url": "previousHash", "valueString": entry["previous_hash"]},
                    {"url": "entryHash", "valueString": entry["entry_hash"]},
                ],
            }
        ],
    }
    purposes = _purposes(entry)
    if purposes:
        resource["purposeOfEvent"] = purposes
    return resource


def _text(document: Any) -> str:
    return canonical_json(document).decode("utf-8")


def fhir_lines(entries: Iterable[Mapping[str, Any]], *, log: str, timestamp: str) -> Iterator[str]:
    """A Bundle (type collection), one entry per line, so it streams both ways."""
    yield _text({"resourceType": "Bundle", "type": "collection", "timestamp": timestamp})[:-1]
    yield ',"entry":[\n'
    separator = ""
    for entry in entries:
        resource = fhir_resource(entry, log)
        yield separator + _text({"fullUrl": f"urn:audit:{resource['id']}", "resource": resource}) + "\n"
        separator = ","
    yield "]}\n"


def _fhir_entry(document: Any, log: str) -> dict[str, Any]:
    try:
        chain = document["resource"]["extension"][0]
        parts = {item["url"]: item["valueString"] for item in chain["extension"]}
        entry = dict(loads(parts["entry"]), previous_hash=parts["previousHash"], entry_hash=parts["entryHash"])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise FormatError("an AuditEvent without its chain extension") from error
    entry = _entry(entry)
    if document["resource"] != fhir_resource(entry, log):
        # The readable part of the resource was changed: report it at the entry's own sequence.
        entry = dict(entry, entry_hash="altered:" + str(entry["entry_hash"]))
    return entry


def fhir_read(handle: IO[str], *, log: str) -> Iterator[dict[str, Any]]:
    """The entries of a FHIR export, each checked against the resource that carries it."""
    header = handle.readline()
    if not header.startswith('{"resourceType":"Bundle"') or not header.endswith(',"entry":[\n'):
        raise FormatError("not an audit export Bundle")
    for number, line in enumerate(handle, start=2):
        text = line.strip()
        if text == "]}":
            return
        try:
            yield _fhir_entry(loads(text.removeprefix(",")), log)
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
