"""The OpenAPI description, derived from what each view declares and from the policy's own data.

drf-spectacular builds each operation from the view's serializers (and, for a
list, its ``pagination_class``: the ``{next, previous, results}`` envelope and
the paging parameters). :class:`GatewaySchema` then states what the stack
around the handler does, from the sources that make it do so:

- the refusals (RFC 9457 problem documents, ``application/problem+json``) of
  every layer a request passes, by status, with the stable ``code`` values the
  operation can answer with enumerated: authentication, the policy's denial
  reasons for the operation's action (:func:`denial_codes`, from the policy's
  data: a second factor only for elevated actions, consent only for PHI reads
  of consent-bound resources...), rate limits, the body's parsing and
  validation, ``If-Match`` (``precondition_methods``), and the handler's own
  (``problem_codes``, :class:`core.contract.ApiContract`);
- the headers: ``X-Purpose-Of-Use`` and ``If-Match`` asked for, ``ETag``,
  ``Location``, ``RateLimit-*``, ``Retry-After``, ``X-Request-ID`` and a
  deprecated method's ``Deprecation``/``Sunset``/``Link`` answered;
- the security: the bearer JWT on every guarded operation, none on the public
  ones, and ``x-requires-second-factor`` where the policy wants a recent one;
- the operation id (the policy action, camel-cased, unless the view names it),
  which a generated client makes its method name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent, force_instance

from core.contract import ApiContract
from core.errors import ErrorCode
from core.pagination import BodyCursor
from core.rfc9457 import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX, TITLES
from core.serializers import StrictSerializer
from gateway.errors import GatewayErrorCode
from policy.errors import PolicyErrorCode
from policy.matrix import policy_matrix
from policy.obligations import IDENTIFIER_FIELDS, RedactingSerializerMixin
from policy.views import PolicyView
from security.audit.errors import AuditErrorCode
from security.errors import IdentityErrorCode
from services.common import text_pattern
from services.errors import RecordErrorCode
from tenants.errors import CommunityErrorCode
from vault.errors import VaultErrorCode

Codes = Mapping[int, Iterable[StrEnum | str]]

PROBLEM_COMPONENT = "Problem"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
EXTRA_TITLES = {
    411: "Length required", 412: "Precondition failed", 414: "URI too long", 428: "Precondition required",
    431: "Request header fields too large",
}  # fmt: skip

# Every request, guarded or not: the edge (a host, a version, the proxy check, the dependencies it needs).
EDGE: Codes = {
    400: (CommunityErrorCode.INVALID_HOST, ErrorCode.MALFORMED_HTTP_REQUEST, ErrorCode.TOO_MANY_PARAMETERS),
    403: (GatewayErrorCode.GATEWAY_REQUIRED,),
    404: (CommunityErrorCode.UNKNOWN_HOST,),
    406: (ErrorCode.NOT_ACCEPTABLE,),
    410: (GatewayErrorCode.VERSION_SUNSET,),
    414: (ErrorCode.REQUEST_LINE_TOO_LONG,),
    429: (ErrorCode.RATE_LIMITED,),
    431: (ErrorCode.HEADER_FIELDS_TOO_LARGE,),
    503: (GatewayErrorCode.DEPENDENCIES_UNAVAILABLE, GatewayErrorCode.PROXY_CHECK_UNAVAILABLE,
          ErrorCode.RATE_LIMIT_UNAVAILABLE),
}  # fmt: skip
# A guarded operation: the token, the policy's decision and its record, the keys.
GUARDED: Codes = {
    400: (PolicyErrorCode.INVALID_PURPOSE,),
    401: (ErrorCode.AUTHENTICATION_REQUIRED, ErrorCode.INVALID_TOKEN, IdentityErrorCode.SESSION_IDLE_TIMEOUT,
          IdentityErrorCode.SESSION_EXPIRED),
    403: (CommunityErrorCode.SUSPENDED,),
    503: (PolicyErrorCode.UNAVAILABLE, AuditErrorCode.UNAVAILABLE, VaultErrorCode.KEY_SERVICE_UNAVAILABLE,
          IdentityErrorCode.REVOCATION_UNAVAILABLE),
}  # fmt: skip
# A request with a body: its framing, size, media type, parsing and validation.
BODY: Codes = {
    400: (ErrorCode.MALFORMED_REQUEST, ErrorCode.VALIDATION_FAILED),
    413: (ErrorCode.PAYLOAD_TOO_LARGE, GatewayErrorCode.LENGTH_REQUIRED),
    415: (ErrorCode.UNSUPPORTED_MEDIA_TYPE,),
}
QUERY: Codes = {400: (ErrorCode.VALIDATION_FAILED,)}
ITEM: Codes = {404: (ErrorCode.NOT_FOUND,)}
PAGED: Codes = {400: (ErrorCode.INVALID_PAGE_SIZE, ErrorCode.INVALID_CURSOR)}
PRECONDITION: Codes = {
    428: (RecordErrorCode.IF_MATCH_REQUIRED, RecordErrorCode.IF_MATCH_WILDCARD),
    409: (RecordErrorCode.EDIT_CONFLICT,),
}
# The policy's reasons that any caller may meet, whatever the action (policy/rego/gateway/authz.rego).
ALWAYS_DENIABLE = ("not_a_member", "action_not_permitted", "community_suspended")


# What a request that fits the schema is never refused for, because the schema states it: a field's type,
# length, pattern, choices, presence or nullability (DRF's own field codes and ours), an undeclared field, a body
# that is not JSON, a header outside its enum. Every other 400 refuses what only the data can say (a date in
# the future, a study this community does not have, a wrong one-time password). The fuzzer holds the schema to
# this: a schema-valid request may get the second kind, never the first (tests/contract).
SCHEMA_FIELD_CODES = frozenset({
    "required", "null", "blank", "empty", "invalid", "invalid_type", "invalid_choice", "not_a_list", "not_a_dict",
    "max_length", "min_length", "max_value", "min_value", "max_string_length", "max_digits", "max_decimal_places",
    "max_whole_digits", "null_characters_not_allowed", "control_characters", "unknown_field", "date", "datetime",
    "make_aware",
})  # fmt: skip
SCHEMA_PROBLEM_CODES = frozenset({
    str(ErrorCode.MALFORMED_REQUEST), str(ErrorCode.UNSUPPORTED_MEDIA_TYPE), str(PolicyErrorCode.INVALID_PURPOSE),
    str(ErrorCode.PAYLOAD_TOO_LARGE), str(RecordErrorCode.INVALID_BODY),
})  # fmt: skip


def refuses_the_schema_s_own_rules(document: Mapping[str, Any]) -> bool:
    """Whether a 400 problem document refuses something the schema itself forbids (see SCHEMA_FIELD_CODES)."""
    code = str(document.get("code", ""))
    if code in SCHEMA_PROBLEM_CODES:
        return True
    if code != str(ErrorCode.VALIDATION_FAILED):
        return False
    return any(str(error.get("code", "")) in SCHEMA_FIELD_CODES for error in document.get("errors", ()))


def denial_codes(action: str) -> list[str]:
    """The policy's denial reasons ``action`` can be refused with, read from the policy's data.

    A second factor only where the action is elevated; a purpose not permitted
    only on a PHI action when some purpose is exempt; consent only on a PHI
    action of a consent-bound resource; the grant holder's rules only on the
    actions they name.
    """
    matrix = policy_matrix()
    codes = list(ALWAYS_DENIABLE)
    if action in matrix.elevated_actions:
        codes.append("mfa_required")
    if action in matrix.never_by_holder:
        codes.append("self_review")
    if action in matrix.holder_or:
        codes.append("not_the_holder")
    if action in matrix.phi_actions:
        codes.append("purpose_not_permitted")
        if action.split(".", 1)[0] in matrix.consent_bound_resources:
            codes.append("consent_not_covering_purpose")
    return codes


def _merge(*layers: Codes) -> dict[int, list[str]]:
    merged: dict[int, list[str]] = {}
    for layer in layers:
        for status, codes in layer.items():
            bucket = merged.setdefault(status, [])
            bucket.extend(str(code) for code in codes if str(code) not in bucket)
    return merged


VERBS = {
    "List": {"GET": "List", "POST": "Create"},
    "Detail": {"GET": "Read", "PATCH": "Update", "PUT": "Replace", "DELETE": "Delete"},
    "": {"GET": "Read", "POST": "Create", "PATCH": "Update", "PUT": "Replace", "DELETE": "Delete"},
}


def operation_id(view_name: str, method: str, methods: Iterable[str]) -> str:
    """An operation id made of the view's class name, which a generated client makes its method's name.

    ``StudyListApi``: ``studyList`` (GET), ``studyCreate`` (POST);
    ``StudyDetailApi``: ``studyRead``, ``studyUpdate``; a view of one method
    is its name (``ExportDownloadApi``: ``exportDownload``); of several, its
    name and the verb (``BreakGlassApi``: ``breakGlassRead``, ``breakGlassCreate``).
    """
    name = view_name.lstrip("_").removesuffix("Api")
    kind = next((suffix for suffix in ("List", "Detail") if name.endswith(suffix)), "")
    base = name.removesuffix(kind) if kind else name
    several = len(set(methods) - {"HEAD", "OPTIONS"}) > 1
    verb = VERBS[kind].get(method, method.title()) if kind or several else ""
    return base[:1].lower() + base[1:] + verb


def _methods(view: Any) -> list[str]:
    return [method.upper() for method in getattr(view, "http_method_names", ()) if hasattr(view, method)]


def _header(description: str, *, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"description": description, "schema": schema or {"type": "string"}}
    if required:
        found["required"] = True
    return found


RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": _header("Requests allowed in the window", schema={"type": "integer"}),
    "RateLimit-Remaining": _header("Requests left in the window", schema={"type": "integer"}),
    "RateLimit-Reset": _header("Seconds until the window resets", schema={"type": "integer"}),
}
REQUEST_ID_HEADER = {"X-Request-ID": _header("The request's id, as the audit log and the logs name it")}
API_HEADERS = {
    "API-Version": _header("The API version that answered", schema={"type": "string", "pattern": "^v[0-9]+$"}),
    "Cache-Control": _header("no-store: a response may carry PHI", schema={"type": "string", "enum": ["no-store"]}),
}
LIFECYCLE = """

## Versions, deprecation and sunset

The version is in the path (`/api/v1/`); every response names it (`API-Version`).
Within a version changes are additive only: new operations, new optional request
fields, new response fields and new problem `code` values a client must treat as
its status's generic meaning. Anything else is a new version.

A version is deprecated at least 90 days before its sunset (the service refuses
to start otherwise). From its deprecation every response carries `Deprecation`
(RFC 9745), `Sunset` (RFC 8594) and a `Link` to the successor
(`rel="successor-version"`); after the sunset it answers 410 `version_sunset`.
One operation may be deprecated alone: it is marked `deprecated` here with its
`x-sunset` date, answers with the same headers, and after its sunset 410
`operation_sunset`.
"""


class GatewaySchema(AutoSchema):
    """drf-spectacular's schema of one operation, with the contract the stack around it keeps (module docstring)."""

    def _contract(self) -> type[ApiContract] | None:
        view = type(self.view)
        return view if issubclass(view, ApiContract) else None

    def _action(self) -> str | None:
        view = type(self.view)
        return view.declared_action(self.method) if issubclass(view, PolicyView) else None

    def _actions(self) -> list[str]:
        """Every action the operation may be decided as (a read's ``?format=`` may make it another)."""
        view = type(self.view)
        return view.possible_actions(self.method) if issubclass(view, PolicyView) else []

    def get_operation_id(self) -> str:
        """The view's declared id, else one made of its class's name (:func:`operation_id`)."""
        contract = self._contract()
        if contract is not None and self.method in contract.operation_ids:
            return contract.operation_ids[self.method]
        return operation_id(type(self.view).__name__, self.method, _methods(self.view))

    def _pages(self) -> bool:
        """Whether the operation answers a page: a list's GET, or a search paging in its body."""
        paginator = getattr(self.view, "pagination_class", None)
        return paginator is not None and (self.method == "GET" or issubclass(paginator, BodyCursor))

    def _map_serializer(self, serializer: Any, direction: Any, bypass_extensions: bool = False) -> dict[str, Any]:
        """A strict serializer refuses fields it does not declare: its schema says so (``additionalProperties``)."""
        schema: dict[str, Any] = super()._map_serializer(serializer, direction, bypass_extensions)  # type: ignore[no-untyped-call]
        instance = force_instance(serializer)  # type: ignore[no-untyped-call]  # untyped library
        if isinstance(instance, StrictSerializer):
            schema["additionalProperties"] = False
        if direction == "response" and isinstance(instance, RedactingSerializerMixin):
            _redactable(schema)
        return schema

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> dict[str, Any]:
        """A request's text field says which characters it refuses (:func:`text_pattern`), as its validation does."""
        schema: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)  # type: ignore[no-untyped-call]
        if direction == "request" and schema.get("type") == "string":
            pattern = text_pattern(field)
            if pattern is not None and "pattern" not in schema and "format" not in schema and "enum" not in schema:
                schema["pattern"] = pattern
        return schema

    def get_tags(self) -> list[str]:
        """The resource the operation is about (the action's prefix), else drf-spectacular's tags."""
        action = self._action()
        return [action.split(".", 1)[0]] if action else list(super().get_tags())

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:  # noqa: D102 - see the class
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        self.registry.register_on_missing(_problem_component())
        action, contract = self._action(), self._contract()
        precondition = contract is not None and self.method in contract.precondition_methods
        self._add_request_headers(operation, guarded=action is not None, precondition=precondition)
        self._add_problems(operation, self._problems(operation, action, contract, precondition=precondition))
        self._add_response_headers(operation, guarded=action is not None)
        if action is not None:
            self._describe_policy(operation, action)
        else:
            operation["security"] = []
        deprecation = contract.deprecations.get(self.method) if contract is not None else None
        if deprecation is not None:
            operation["deprecated"] = True
            operation["x-sunset"] = deprecation.sunset.isoformat()
            for response in _successes(operation):
                response.setdefault("headers", {}).update({
                    name: _header(f"RFC 9745/8594: deprecated, answers until {deprecation.sunset}")
                    for name in deprecation.headers()
                })  # fmt: skip
        return operation

    def _problems(
        self, operation: dict[str, Any], action: str | None, contract: type[ApiContract] | None, *, precondition: bool
    ) -> dict[int, list[str]]:
        layers: list[Codes] = [EDGE]
        if action is not None:
            layers += [GUARDED, *({403: denial_codes(each)} for each in self._actions())]
        if self.method in BODY_METHODS and "requestBody" in operation:
            layers.append(BODY)
        if any(parameter.get("in") == "query" for parameter in operation.get("parameters", ())):
            layers.append(QUERY)
        if any(parameter.get("in") == "path" for parameter in operation.get("parameters", ())):
            layers.append(ITEM)
        if self._pages():
            layers.append(PAGED)
        if precondition:
            layers.append(PRECONDITION)
        if contract is not None:
            layers.append(contract.declared_problems(self.method))
            if self.method in contract.deprecations:
                layers.append({410: (GatewayErrorCode.OPERATION_SUNSET,)})
        return _merge(*layers)

    def _add_problems(self, operation: dict[str, Any], problems: Mapping[int, list[str]]) -> None:
        responses = operation.setdefault("responses", {})
        for status, codes in sorted(problems.items()):
            responses[str(status)] = _problem_response(status, codes)

    def _add_request_headers(self, operation: dict[str, Any], *, guarded: bool, precondition: bool) -> None:
        parameters = operation.setdefault("parameters", [])
        if guarded:
            parameters.append({
                "name": "X-Purpose-Of-Use", "in": "header", "required": False,
                "description": "Why the data is used; the policy decides (and the accounting of disclosures "
                f"records) PHI access for it. Default {settings.POLICY_DEFAULT_PURPOSE}.",
                "schema": {"type": "string", "enum": list(settings.POLICY_PURPOSES),
                           "default": settings.POLICY_DEFAULT_PURPOSE},
            })  # fmt: skip
        if precondition:
            parameters.append({
                "name": "If-Match", "in": "header", "required": True,
                "description": "The ETag of the version read (428 without it, 409 `edit_conflict` when stale).",
                "schema": {"type": "string", "pattern": '^"[0-9a-f]{32}"$'},
            })  # fmt: skip
        if not parameters:
            operation.pop("parameters")

    def _add_response_headers(self, operation: dict[str, Any], *, guarded: bool) -> None:
        """What every answer carries (request id, API version, rate limits), and a success's ETag or Location."""
        for status, response in operation.get("responses", {}).items():
            headers = response.setdefault("headers", {})
            headers.update(REQUEST_ID_HEADER)
            if self.path.startswith("/api/"):
                headers.update(API_HEADERS)
            if guarded:
                headers.update(RATE_LIMIT_HEADERS)
            if str(status).startswith("2") and self.method != "DELETE":
                headers.setdefault("ETag", _header("The version of the record (send it as If-Match to change it)"))
            if str(status) == "201":
                headers.setdefault("Location", _header("Where the new record is"))

    def _describe_policy(self, operation: dict[str, Any], action: str) -> None:
        matrix, view = policy_matrix(), type(self.view)
        roles = sorted(role for role, actions in matrix.roles.items() if action in actions)
        operation["x-policy-action"] = action
        operation["x-roles"] = roles
        operation["x-reveals-phi"] = action in matrix.phi_actions
        lines = [f"Policy action `{action}`; roles: {', '.join(roles) or 'none'}."]
        formats = getattr(view, "policy_format_actions", {}) if self.method == "GET" else {}
        lines += [f"With `?format={name}`: action `{other}`." for name, other in formats.items()]
        elevated = [each for each in self._actions() if each in matrix.elevated_actions]
        if elevated:
            operation["x-requires-second-factor"] = True if action in elevated else elevated
            lines.append(
                f"Elevated ({', '.join(f'`{each}`' for each in elevated)}): the token must carry a second factor "
                f"used within {matrix.mfa_max_age_seconds // 60} minutes (otherwise 403 `mfa_required`: sign in "
                "again with a one-time password)."
            )
        if action in matrix.phi_actions:
            lines.append("Reveals PHI: decided for the stated purpose and recorded in the accounting of disclosures.")
        operation["description"] = "\n\n".join([operation.get("description", ""), *lines]).strip()


def _redactable(schema: dict[str, Any]) -> None:
    """Every field but the identifiers may come out ``null``: the policy's redaction blanks it (``"*"`` all)."""
    properties = schema.get("properties", {})
    for name in [name for name in properties if name not in IDENTIFIER_FIELDS]:
        field = properties[name]
        if "$ref" in field:
            field = properties[name] = {"allOf": [{"$ref": field.pop("$ref")}], **field}
        field["nullable"] = True
        field["description"] = (field.get("description", "") + " Null when the policy redacts it.").strip()


def _successes(operation: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [response for status, response in operation.get("responses", {}).items() if str(status).startswith("2")]


def _problem_response(status: int, codes: list[str]) -> dict[str, Any]:
    headers: dict[str, Any] = {"Cache-Control": _header("no-store", schema={"type": "string", "enum": ["no-store"]})}
    headers.update(REQUEST_ID_HEADER)
    if status == 401:  # noqa: PLR2004 - HTTP status
        headers["WWW-Authenticate"] = _header("The bearer challenge (RFC 6750)", required=True)
    if status in {429, 503}:
        headers["Retry-After"] = _header("Seconds to wait", schema={"type": "integer"}, required=status == 429)  # noqa: PLR2004
    return {
        "description": TITLES.get(status) or EXTRA_TITLES.get(status, "Error"),
        "headers": headers,
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": {
                    "allOf": [
                        {"$ref": f"#/components/schemas/{PROBLEM_COMPONENT}"},
                        {"type": "object", "properties": {
                            "status": {"type": "integer", "enum": [status]},
                            "code": {"type": "string", "enum": sorted(codes)},
                        }},
                    ]
                }
            }
        },
    }  # fmt: skip


def _problem_component() -> ResolvedComponent:
    schema = {
        "type": "object",
        "description": "An RFC 9457 problem document. `code` is the stable reason to act on; `detail` is for people.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "description": f"`{PROBLEM_TYPE_PREFIX}<code>`"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "instance": {"type": "string", "description": "The request's path"},
            "request_id": {"type": "string", "description": "The request's id in the audit log"},
            "errors": {
                "type": "array", "description": "What is wrong with each field (validation failures)",
                "items": {
                    "type": "object", "required": ["field", "code", "message"],
                    "properties": {"field": {"type": "string"}, "code": {"type": "string"},
                                   "message": {"type": "string"}},
                },
            },
            "reasons": {"type": "array", "items": {"type": "string"}, "description": "Every reason of a denial"},
            "decision_id": {"type": "string", "description": "The policy decision, in the audit log"},
        },
        "additionalProperties": True,
    }  # fmt: skip
    return ResolvedComponent(  # type: ignore[no-untyped-call]  # drf-spectacular is untyped
        name=PROBLEM_COMPONENT, type=ResolvedComponent.SCHEMA, object=PROBLEM_COMPONENT, schema=schema
    )


def describe_versions(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the lifecycle policy and each version's dates in ``info``."""
    info = result.setdefault("info", {})
    info["description"] = str(info.get("description", "")) + LIFECYCLE
    info["x-api-versions"] = {
        version: {name: (str(value) if value is not None else None) for name, value in entry.items()}
        for version, entry in settings.API_VERSIONS.items()
    }
    return result
