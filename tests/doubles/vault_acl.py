"""Vault's ACL policies as the Vault double enforces them: HCL parsing, path matching, capabilities, parameters.

Written from OpenBao v2.6.2, ``vault/policy/policy.go`` (parsing) and
``vault/policy/acl.go`` (``NewACL``, ``AllowOperation``,
``CheckAllowedFromNonExactPaths``), the fork of HashiCorp Vault 1.14 that the
double models. What it keeps of them:

- a path is exact, or a prefix when it ends in ``*`` (the ``*`` matches the
  rest of the path, slashes included; a ``*`` anywhere else is a literal), or
  has ``+`` segment wildcards (one whole segment each);
- the same path in several policies merges its capabilities, and ``deny``
  on it wins over everything;
- an exact rule wins; otherwise, among the prefix and segment rules that
  match, the one that starts its wildcard latest wins, then a non-prefix over
  a prefix, then fewer ``+``, then the longer path, then the greater string;
- ``required_parameters``, ``denied_parameters`` and ``allowed_parameters``
  are checked on reads and writes; a backend's root paths also need ``sudo``; a number in a JSON request is a
  ``json.Number`` there, so it matches only an empty value list.

What it refuses to parse, rather than pretend to enforce: wrapping TTLs, MFA
methods, pagination limits, expirations and list filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import hcl2
from hcl2 import SerializationOptions

# vault/policy/policy.go@v2.6.2: the capabilities, and the old "policy" words they stand for.
CAPABILITIES = frozenset({"deny", "create", "read", "update", "delete", "list", "sudo", "patch", "scan"})
_OLD_POLICIES = {
    "deny": ("deny",),
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}
# parsePaths' valid keys; only the first group is modelled.
_MODELLED_KEYS = frozenset(
    {"comment", "policy", "capabilities", "allowed_parameters", "denied_parameters", "required_parameters"}
)
_UNMODELLED_KEYS = frozenset(
    {
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "pagination_limit",
        "expiration",
        "list_scan_response_keys_filter_path",
    }
)
# acl.go@v2.6.2 AllowOperation: the operations whose request data the parameter rules look at.
_PARAMETER_OPERATIONS = frozenset({"read", "update", "create", "patch"})
_HCL = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)

Parameters = Mapping[str, tuple[Any, ...]]


class PolicyError(ValueError):
    """A policy Vault would refuse to store (``sys/policies/acl`` answers 400 with this text)."""


@dataclass(frozen=True)
class PathRule:
    """One ``path`` block: the path as written, how it matches, and what it grants."""

    written: str
    path: str
    is_prefix: bool
    segment_wildcards: bool
    capabilities: frozenset[str]
    allowed_parameters: Parameters | None = None
    denied_parameters: Parameters | None = None
    required_parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A named ACL policy and its text, as ``sys/policies/acl/:name`` stores it."""

    name: str
    text: str
    rules: tuple[PathRule, ...]


@dataclass
class _Permissions:
    """What the rules on one path grant, merged across policies (acl.go ``ACLPermissions``)."""

    written: str
    capabilities: set[str]
    allowed_parameters: dict[str, tuple[Any, ...]] | None
    denied_parameters: dict[str, tuple[Any, ...]] | None
    required_parameters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """What the ACL said about one request: the rule that matched (as written) and the capability asked."""

    path: str
    capability: str
    allowed: bool
    rule: str | None
    parameters: frozenset[str]
    policies: tuple[str, ...]


@lru_cache(maxsize=64)
def parse_policy(name: str, text: str) -> Policy:
    """The policy ``text`` names, or PolicyError with the reason Vault would give (parsed once per text)."""
    try:
        document = hcl2.loads(text, serialization_options=_HCL)
    except Exception as error:
        raise PolicyError(f"failed to parse policy: {error}") from error
    unknown = set(document) - {"name", "path"}
    if unknown:
        raise PolicyError(f"failed to parse policy: invalid key {sorted(unknown)[0]!r}")
    blocks = document.get("path", [])
    rules = tuple(_rule(written, body) for block in blocks for written, body in block.items())
    return Policy(name=name, text=text, rules=rules)


def _rule(written: str, body: Mapping[str, Any]) -> PathRule:
    invalid = set(body) - _MODELLED_KEYS - _UNMODELLED_KEYS
    if invalid:
        raise PolicyError(f'failed to parse policy: path "{written}": invalid key {sorted(invalid)[0]!r}')
    if set(body) & _UNMODELLED_KEYS:
        raise NotImplementedError(f"the Vault double does not model {sorted(set(body) & _UNMODELLED_KEYS)}")
    path = written.removeprefix("/")
    if "+*" in path:
        raise PolicyError(f"path \"{path}\": invalid use of wildcards ('+*' is forbidden)")
    segment_wildcards = path == "+" or "/+" in path or path.startswith("+/")
    is_prefix = path.endswith("*") and not segment_wildcards
    return PathRule(
        written=written,
        path=path.removesuffix("*") if is_prefix else path,
        is_prefix=is_prefix,
        segment_wildcards=segment_wildcards,
        capabilities=_capabilities(written, body),
        allowed_parameters=_parameters(body.get("allowed_parameters")),
        denied_parameters=_parameters(body.get("denied_parameters")),
        required_parameters=tuple(body.get("required_parameters", ())),
    )


def _capabilities(written: str, body: Mapping[str, Any]) -> frozenset[str]:
    named = list(body.get("capabilities", ()))
    old = body.get("policy")
    if old is not None:
        if old not in _OLD_POLICIES:
            raise PolicyError(f'path "{written}": invalid policy "{old}"')
        named += _OLD_POLICIES[old]
    for capability in named:
        if capability not in CAPABILITIES:
            raise PolicyError(f'path "{written}": invalid capability "{capability}"')
    # A deny among them is the whole grant (policy.go: "If it's deny, don't include any other capability").
    return frozenset({"deny"}) if "deny" in named else frozenset(named)


def _parameters(raw: Any) -> Parameters | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(value, list) for value in raw.values()):
        raise PolicyError("failed to parse policy: parameter rules map a name to a list of values")
    return {str(name).lower(): tuple(values) for name, values in raw.items()}


class ACL:
    """The rules of a token's policies, merged as ``NewACL`` merges them; ``root`` allows everything."""

    def __init__(self, policies: list[Policy], *, root: bool = False) -> None:
        self.root = root
        self.policy_names = tuple(policy.name for policy in policies)
        self._exact: dict[str, _Permissions] = {}
        self._prefix: dict[str, _Permissions] = {}
        self._segment: dict[str, _Permissions] = {}
        for policy in policies:
            for rule in policy.rules:
                self._insert(rule)

    def _insert(self, rule: PathRule) -> None:
        table = self._segment if rule.segment_wildcards else self._prefix if rule.is_prefix else self._exact
        existing = table.get(rule.path)
        if existing is None:
            table[rule.path] = _Permissions(
                written=rule.written,
                capabilities=set(rule.capabilities),
                allowed_parameters=None if rule.allowed_parameters is None else dict(rule.allowed_parameters),
                denied_parameters=None if rule.denied_parameters is None else dict(rule.denied_parameters),
                required_parameters=list(rule.required_parameters),
            )
        elif "deny" in existing.capabilities:
            return
        elif "deny" in rule.capabilities:
            existing.capabilities = {"deny"}
            existing.allowed_parameters = existing.denied_parameters = None
        else:
            existing.capabilities |= rule.capabilities
            existing.allowed_parameters = _merged(existing.allowed_parameters, rule.allowed_parameters)
            existing.denied_parameters = _merged(existing.denied_parameters, rule.denied_parameters)
            existing.required_parameters += [
                p for p in rule.required_parameters if p not in existing.required_parameters
            ]

    def decide(self, path: str, capability: str, data: Mapping[str, Any], *, sudo: bool = False) -> Decision:
        """Whether ``capability`` on ``path`` with request ``data`` is allowed, and by which rule.

        ``sudo``: the path is one of its backend's root paths, so the rule
        must grant ``sudo`` as well (core.go@v2.6.2:3996 ``RootPrivsRequired``).
        """
        path = path.lstrip("/")
        parameters = frozenset(name.lower() for name in data)

        def decision(allowed: bool, rule: str | None) -> Decision:
            return Decision(path, capability, allowed, rule, parameters, self.policy_names)

        if self.root:
            return decision(True, None)
        permissions = self._matching(path, listing=capability in {"list", "scan"})
        if permissions is None:
            return decision(False, None)
        allowed = capability in permissions.capabilities and "deny" not in permissions.capabilities
        allowed = allowed and (not sudo or "sudo" in permissions.capabilities)
        if allowed and capability in _PARAMETER_OPERATIONS:
            allowed = _parameters_allowed(permissions, data)
        return decision(allowed, permissions.written)

    def _matching(self, path: str, *, listing: bool) -> _Permissions | None:
        exact = self._exact.get(path)
        if exact is None and listing:
            exact = self._exact.get(path.removesuffix("/"))
        if exact is not None:
            return exact
        found = self._non_exact(path)
        if found is None and listing and path.endswith("/"):
            found = self._non_exact(path.removesuffix("/"))
        return found

    def _non_exact(self, path: str) -> _Permissions | None:
        """acl.go ``CheckAllowedFromNonExactPaths`` (not the bare-mount case): the best prefix or segment rule."""
        candidates: list[tuple[tuple[int, bool, int, int, str], _Permissions]] = []
        prefixes = [prefix for prefix in self._prefix if path.startswith(prefix)]
        if prefixes:
            longest = max(prefixes, key=len)
            if not self._segment:
                return self._prefix[longest]
            candidates.append(((len(longest), False, 0, len(longest), longest), self._prefix[longest]))
        for written_path, permissions in self._segment.items():
            key = _segment_match(written_path, path)
            if key is not None:
                candidates.append((key, permissions))
        if not candidates:
            return None
        # The sort key orders lowest priority first, as acl.go's ``less``; the last one wins.
        return max(candidates, key=lambda candidate: candidate[0])[1]


def _segment_match(rule_path: str, path: str) -> tuple[int, bool, int, int, str] | None:
    """The priority key of a ``+`` rule when it matches ``path`` (first wildcard, not prefix, -wildcards, length)."""
    is_prefix = rule_path.endswith("*")
    pattern = rule_path.removesuffix("*") if is_prefix else rule_path
    rule_parts, path_parts = pattern.split("/"), path.split("/")
    if len(path_parts) < len(rule_parts) or (not is_prefix and len(path_parts) != len(rule_parts)):
        return None
    wildcards = 0
    for index, part in enumerate(rule_parts):
        last = index == len(rule_parts) - 1
        if part == "+":
            wildcards += 1
        elif part != path_parts[index] and not (is_prefix and last and path_parts[index].startswith(part)):
            return None
    return (rule_path.index("+"), not is_prefix, -wildcards, len(pattern), pattern)


def _merged(existing: dict[str, tuple[Any, ...]] | None, new: Parameters | None) -> dict[str, tuple[Any, ...]] | None:
    """acl.go: a parameter's value lists add up, and an empty list (any value) absorbs the others."""
    if not new:
        return existing
    if existing is None:
        return dict(new)
    for name, values in new.items():
        if not values or (name in existing and not existing[name]):
            existing[name] = ()
        else:
            existing[name] = values + existing.get(name, ())
    return existing


def _parameters_allowed(permissions: _Permissions, data: Mapping[str, Any]) -> bool:
    # acl.go@v2.6.2:505: a required parameter is looked up as req.Data[strings.ToLower(p)], the request's
    # own spelling; allowed and denied parameters lower the request's names instead.
    if any(required.lower() not in data for required in permissions.required_parameters):
        return False
    lowered = {name.lower(): value for name, value in data.items()}
    if not lowered:
        return True
    denied = permissions.denied_parameters or {}
    if "*" in denied:
        return False
    if any(name in denied and _value_listed(value, denied[name]) for name, value in lowered.items()):
        return False
    allowed = permissions.allowed_parameters
    if not allowed or (len(allowed) == 1 and "*" in allowed):
        return True
    return all(
        (name in allowed and _value_listed(value, allowed[name])) or (name not in allowed and "*" in allowed)
        for name, value in lowered.items()
    )


def _value_listed(value: Any, listed: tuple[Any, ...]) -> bool:
    """acl.go ``valueInParameterList``: empty means any; strings glob on a leading or trailing ``*``."""
    if not listed:
        return True
    return any(_same(item, value) for item in listed)


def _same(item: Any, value: Any) -> bool:
    if item is None or value is None:
        return item is value
    if isinstance(item, str) and isinstance(value, str):
        return _glob_match(item, value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return False  # a json.Number in Vault, never equal to an HCL value
    return type(item) is type(value) and bool(item == value)


def _glob_match(item: str, value: str) -> bool:
    """go-secure-stdlib strutil ``GlobbedStringsMatch``."""
    if len(item) < 2:
        return value == item
    if item.startswith("*") and item.endswith("*"):
        return item[1:-1] in value
    if item.startswith("*"):
        return value.endswith(item[1:])
    if item.endswith("*"):
        return value.startswith(item[:-1])
    return value == item
