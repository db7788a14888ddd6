"""The Vault double's system backend, AppRole auth method and tokens, as OpenBao v2.6.2 answers them.

Only what ``deploy/vault/bootstrap.sh`` and the provider use, for the fields
they send: ``sys/health``, ``sys/mounts``, ``sys/auth``, ``sys/policies/acl``,
``sys/audit``, and AppRole's ``role/:name``, ``role/:name/role-id``,
``role/:name/secret-id`` and ``login``. Sources:
``http/sys_health.go``, ``vault/logical_system.go``,
``vault/logical_system_paths.go``, ``vault/mount.go``, ``vault/auth.go``,
``vault/audit.go``, ``builtin/credential/approle/path_role.go``,
``path_login.go``, ``validation.go`` and ``sdk/helper/tokenutil`` at v2.6.2.

Enabling an audit device through the API is refused, as OpenBao 2.6 refuses
it unless the server's configuration sets ``unsafe_allow_api_audit_creation``
(``logical_system.go@v2.6.2:3030``); HashiCorp Vault allows it (with sudo):
``SystemState.audit_api_enabled`` chooses.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.vault_acl import Policy, PolicyError, parse_policy
from tests.doubles.vault_framework import NAME, Call, Reply, Route, answer, not_found, refuse

VERSION = "2.6.2"
# vault/mount.go and auth.go: the tables of a fresh (not dev-mode) server.
_DEFAULT_MOUNTS = {"cubbyhole/": "cubbyhole", "identity/": "identity", "sys/": "system"}
_DEFAULT_AUTH = {"token/": "token"}
# command/server/config.go: the system's max lease TTL when the configuration names none (32 days).
MAX_LEASE_TTL = 768 * 3600


@dataclass
class Mount:
    """A secrets engine or auth method at a path (``routing.MountEntry``)."""

    type: str
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)
    local: bool = False
    accessor: str = field(default_factory=lambda: f"mount_{uuid.uuid4().hex[:8]}")

    def info(self) -> dict[str, Any]:
        """What ``sys/mounts`` and ``sys/auth`` list for it (``mountInfo``, the fields the double keeps)."""
        return {
            "type": self.type,
            "description": self.description,
            "accessor": self.accessor,
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
            "local": self.local,
            "seal_wrap": False,
            "options": self.options or None,
        }


@dataclass
class AuditDevice:
    """An audit device; ``declared`` ones come from the server's configuration, not the API."""

    type: str
    options: dict[str, str]
    description: str = ""
    local: bool = False
    declared: bool = False


@dataclass
class SecretID:
    """One AppRole secret ID: its uses left (0: unlimited), its expiry and its CIDR bindings."""

    accessor: str
    num_uses: int
    expires_at: float | None
    cidr_list: list[str]
    token_bound_cidrs: list[str]


@dataclass
class Role:
    """An AppRole role with the token settings ``tokenutil`` parses, and its secret IDs by value."""

    name: str
    role_id: str
    bind_secret_id: bool = True
    secret_id_bound_cidrs: list[str] = field(default_factory=list)
    secret_id_num_uses: int = 0
    secret_id_ttl: int = 0
    token_policies: list[str] = field(default_factory=list)
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_bound_cidrs: list[str] = field(default_factory=list)
    token_num_uses: int = 0
    token_type: str = "default"
    token_no_default_policy: bool = False
    secret_ids: dict[str, SecretID] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """``role/:name`` read: the role's settings (never a secret ID)."""
        return {
            "bind_secret_id": self.bind_secret_id,
            "secret_id_bound_cidrs": self.secret_id_bound_cidrs,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
            "local_secret_ids": False,
            "token_policies": self.token_policies,
            "policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_num_uses": self.token_num_uses,
            "token_type": self.token_type,
            "token_no_default_policy": self.token_no_default_policy,
            "token_explicit_max_ttl": 0,
            "token_period": 0,
        }


@dataclass
class Token:
    """A token: its policies (``root`` alone for the root token), expiry and CIDR binding."""

    policies: tuple[str, ...]
    expires_at: float | None = None
    bound_cidrs: tuple[str, ...] = ()

    @property
    def root(self) -> bool:
        """The root policy grants everything (acl.go ``NewACL``)."""
        return self.policies == ("root",)

    def usable_from(self, client: str) -> bool:
        """Not expired, and the client inside its bound CIDRs (if any)."""
        if self.expires_at is not None and time.time() >= self.expires_at:
            return False
        return not self.bound_cidrs or _in_cidrs(client, self.bound_cidrs)


@dataclass
class SystemState:
    """The mount, auth, policy and audit tables, AppRole roles by auth mount, and the tokens."""

    mounts: dict[str, Mount] = field(default_factory=lambda: {p: Mount(t) for p, t in _DEFAULT_MOUNTS.items()})
    auth: dict[str, Mount] = field(default_factory=lambda: {p: Mount(t) for p, t in _DEFAULT_AUTH.items()})
    policies: dict[str, Policy] = field(default_factory=dict)
    audit: dict[str, AuditDevice] = field(default_factory=dict)
    roles: dict[str, dict[str, Role]] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    audit_api_enabled: bool = False
    sealed: bool = False
    standby: bool = False
    initialized: bool = True

    def issue_token(self, policies: list[str], *, ttl: int = 0, bound_cidrs: list[str] | None = None) -> str:
        """A new token bound to ``policies`` (as ``vault token create -policy=...`` would make)."""
        token = f"hvs.{secrets.token_urlsafe(18)}"
        expires = time.time() + ttl if ttl else None
        self.tokens[token] = Token(tuple(policies), expires, tuple(bound_cidrs or ()))
        return token


def _in_cidrs(address: str, cidrs: list[str] | tuple[str, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _valid_cidrs(cidrs: list[str]) -> bool:
    try:
        for cidr in cidrs:
            ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return True


def _sanitized(path: str) -> str:
    """logical_system.go ``sanitizePath``: no leading slash, one trailing slash."""
    return path.strip("/") + "/"


# --- sys/health ------------------------------------------------------------------------------------


def health(system: SystemState, query: dict[str, str]) -> Reply:
    """http/sys_health.go@v2.6.2 getSysHealth: 200 active, 429 standby (200 with ``standbyok``), 503 sealed.

    OpenBao reads no ``perfstandbyok`` and has no 472/473 (HashiCorp Vault's DR
    secondary and performance standby codes): the double answers as OpenBao.
    """
    codes = {"uninitcode": 501, "sealedcode": 503, "standbycode": 429, "activecode": 200}
    for name in codes:
        if name in query:
            if not query[name].lstrip("-").isdigit():
                return Reply(400, errors=[])
            codes[name] = int(query[name])
    standby_ok = query.get("standbyok", "false").lower() in {"1", "t", "true"}
    if not system.initialized:
        status = codes["uninitcode"]
    elif system.sealed:
        status = codes["sealedcode"]
    elif system.standby and not standby_ok:
        status = codes["standbycode"]
    else:
        status = codes["activecode"]
    body = {
        "initialized": system.initialized,
        "sealed": system.sealed,
        "standby": system.standby,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()),
        "version": VERSION,
    }
    if not system.sealed:
        body |= {"cluster_name": "vault-double", "cluster_id": "00000000-0000-0000-0000-000000000000"}
    return Reply(status, raw=body)


# --- sys/mounts, sys/auth ------------------------------------------------------------------------------


def _list_table(table: dict[str, Mount]) -> Reply:
    return answer({path: mount.info() for path, mount in table.items()})


def _enable(table: dict[str, Mount], call: Call, what: str) -> Reply:
    """logical_system.go handleMount / handleEnableAuth: 409 when the path is taken (mount.go, auth.go)."""
    path = _sanitized(call.get("path"))
    if not call.get("type"):
        return refuse(f"{what} type must be specified as a string")
    taken = next((existing for existing in table if path.startswith(existing) or existing.startswith(path)), None)
    if taken is not None:
        return refuse(f"path is already in use at {taken}", 409)
    table[path] = Mount(
        call.get("type"), call.get("description", ""), call.get("options", {}), call.get("local", False)
    )
    return answer()


def _mounts_list(system: SystemState, call: Call) -> Reply:
    return _list_table(system.mounts)


def _mount_enable(system: SystemState, call: Call) -> Reply:
    return _enable(system.mounts, call, "backend")


def _mount_read(system: SystemState, call: Call) -> Reply:
    path = _sanitized(call.get("path"))
    mount = system.mounts.get(path)
    return refuse(f"No secret engine mount at {path}") if mount is None else answer(mount.info())


def _auth_list(system: SystemState, call: Call) -> Reply:
    return _list_table(system.auth)


def _auth_enable(system: SystemState, call: Call) -> Reply:
    reply = _enable(system.auth, call, "backend")
    path = _sanitized(call.get("path"))
    if reply.status == 204 and call.get("type") == "approle":
        system.roles[path] = {}
    return reply


# --- sys/policies/acl ------------------------------------------------------------------------------


def _policy_write(system: SystemState, call: Call) -> Reply:
    """logical_system.go@v2.6.2 handlePoliciesSet: the name lowercased, the text parsed as the ACL parser does."""
    name, text = str(call.get("name")).lower(), call.get("policy", "")
    if name == "root":
        return refuse('cannot update "root" policy')
    if not text:
        return refuse("'policy' parameter not supplied or empty")
    try:
        system.policies[name] = parse_policy(name, text)
    except PolicyError as error:
        return refuse(str(error))
    return answer()


def _policy_read(system: SystemState, call: Call) -> Reply:
    name = str(call.get("name")).lower()
    policy = system.policies.get(name)
    return not_found() if policy is None else answer({"name": name, "policy": policy.text})


def _policy_delete(system: SystemState, call: Call) -> Reply:
    system.policies.pop(str(call.get("name")).lower(), None)
    return answer()


# --- sys/audit -------------------------------------------------------------------------------------


def _audit_list(system: SystemState, call: Call) -> Reply:
    return answer(
        {
            path: {"path": path, "type": device.type, "description": device.description, "options": device.options}
            for path, device in system.audit.items()
        }
    )


def _audit_enable(system: SystemState, call: Call) -> Reply:
    """logical_system.go@v2.6.2 handleEnableAudit, audit.go enableAudit: refused through the API on OpenBao."""
    if not system.audit_api_enabled:
        return refuse(
            "cannot enable audit device via API; use declarative, config-based audit device management instead"
        )
    path = _sanitized(call.get("path"))
    if path in system.audit:
        return refuse("path already in use")
    options = call.get("options", {})
    if call.get("type") != "file":
        raise NotImplementedError("the Vault double implements only the file audit device")
    if not options.get("file_path"):
        return refuse("file_path is required")
    system.audit[path] = AuditDevice("file", options, call.get("description", ""), call.get("local", False))
    return answer()


# logical_system_paths.go@v2.6.2: the fields of sys/mounts/:path and sys/auth/:path.
_MOUNT_FIELDS = {
    "path": "string",
    "type": "string",
    "description": "string",
    "config": "map",
    "local": "bool",
    "seal_wrap": "bool",
    "external_entropy_access": "bool",
    "plugin_name": "string",
    "options": "kv_pairs",
    "plugin_version": "string",
}
SYSTEM_ROUTES = (
    Route("mounts", {"read": _mounts_list}, {}),
    Route(
        "mounts/(?P<path>.+?)",
        {"update": _mount_enable, "read": _mount_read},
        _MOUNT_FIELDS,
    ),
    Route("auth", {"read": _auth_list}, {}),
    Route(
        "auth/(?P<path>.+)",
        {"update": _auth_enable},
        _MOUNT_FIELDS,
    ),
    Route(
        "policies/acl/(?P<name>.+)",
        {"update": _policy_write, "read": _policy_read, "delete": _policy_delete},
        {
            "name": "string",
            "policy": "string",
            "expiration": "string",
            "ttl": "duration",
            "cas": "int",
            "cas_required": "bool",
            "allow_wildcards_in_identity_templates": "bool",
            "allow_slashes_in_identity_templates": "bool",
        },
    ),
    Route("audit", {"read": _audit_list}, {}),
    Route(
        "audit/(?P<path>.+)",
        {"update": _audit_enable},
        {"path": "string", "type": "string", "description": "string", "options": "kv_pairs", "local": "bool"},
    ),
)


# --- AppRole ---------------------------------------------------------------------------------------


@dataclass
class AppRoleMount:
    """An AppRole auth mount's roles, and the system state its logins issue tokens into."""

    roles: dict[str, Role]
    system: SystemState


def _role_exists(mount: AppRoleMount, call: Call) -> bool:
    """path_role.go@v2.6.2 pathRoleExistenceCheck: a POST on a new role is ``create``, else ``update``."""
    return str(call.get("role_name")).lower() in mount.roles


def _role_write(mount: AppRoleMount, call: Call) -> Reply:
    """path_role.go@v2.6.2 pathRoleCreateUpdate (the fields the bootstrap script sends)."""
    name = str(call.get("role_name")).lower()
    role = mount.roles.get(name)
    if role is None:
        role = Role(name=name, role_id=str(call.get("role_id") or uuid.uuid4()))
    elif call.has("role_id"):
        role.role_id = call.get("role_id")
    refused = _role_settings(role, call)
    if refused is not None:
        return refuse(refused)
    mount.roles[name] = role
    return answer()


_ROLE_FIELDS = (
    "bind_secret_id",
    "secret_id_num_uses",
    "secret_id_ttl",
    "secret_id_bound_cidrs",
    "token_policies",
    "token_ttl",
    "token_max_ttl",
    "token_bound_cidrs",
    "token_num_uses",
    "token_type",
    "token_no_default_policy",
)


def _role_settings(role: Role, call: Call) -> str | None:
    for name in _ROLE_FIELDS:
        if call.has(name):
            setattr(role, name, call.get(name))
    if role.token_type not in {"default", "service", "batch", "default-service", "default-batch"}:
        return f"invalid 'token_type' value {role.token_type!r}"
    if role.token_max_ttl and role.token_ttl > role.token_max_ttl:
        return "'token_ttl' cannot be greater than 'token_max_ttl'"
    if role.secret_id_num_uses < 0:
        return "secret_id_num_uses cannot be negative"
    if not _valid_cidrs(role.secret_id_bound_cidrs) or not _valid_cidrs(role.token_bound_cidrs):
        return "invalid CIDR blocks"
    return None


def _role_read(mount: AppRoleMount, call: Call) -> Reply:
    role = mount.roles.get(str(call.get("role_name")).lower())
    return not_found() if role is None else answer(role.settings())


def _role_id_read(mount: AppRoleMount, call: Call) -> Reply:
    role = mount.roles.get(str(call.get("role_name")).lower())
    return not_found() if role is None else answer({"role_id": role.role_id})


def _secret_id_create(mount: AppRoleMount, call: Call) -> Reply:
    """path_role.go@v2.6.2 handleRoleSecretIDCommon: uses and TTL from the role unless asked for less."""
    name = str(call.get("role_name")).lower()
    role = mount.roles.get(name)
    if role is None:
        return refuse(f'role "{name}" does not exist', 404)
    if not role.bind_secret_id:
        return refuse("bind_secret_id is not set on the role")
    uses = call.get("num_uses", role.secret_id_num_uses)
    if role.secret_id_num_uses > 0 and (uses == 0 or uses > role.secret_id_num_uses):
        return refuse("num_uses cannot be higher than the role's secret_id_num_uses")
    ttl = call.get("ttl", role.secret_id_ttl)
    if role.secret_id_ttl > 0 and (ttl == 0 or ttl > role.secret_id_ttl):
        return refuse("ttl cannot be longer than the role's secret_id_ttl")
    ttl = MAX_LEASE_TTL if ttl < 0 or ttl > MAX_LEASE_TTL else ttl  # validation.go deriveSecretIDTTL
    secret_id, accessor = str(uuid.uuid4()), str(uuid.uuid4())
    role.secret_ids[secret_id] = SecretID(
        accessor, uses, time.time() + ttl if ttl else None, call.get("cidr_list", []), call.get("token_bound_cidrs", [])
    )
    return answer(
        {"secret_id": secret_id, "secret_id_accessor": accessor, "secret_id_ttl": ttl, "secret_id_num_uses": uses}
    )


def _login(mount: AppRoleMount, call: Call) -> Reply:
    """path_login.go@v2.6.2 pathLoginUpdate: 400 "invalid role or secret ID" for any wrong credential."""
    role_id = str(call.get("role_id", "")).strip()
    if not role_id:
        return refuse("missing role_id")
    role = next((role for role in mount.roles.values() if role.role_id == role_id), None)
    if role is None:
        return refuse("invalid role or secret ID")
    bound: list[str] = []
    if role.bind_secret_id:
        refused, bound = _spend_secret_id(role, str(call.get("secret_id", "")).strip(), call.client)
        if refused is not None:
            return refuse(refused)
    if role.secret_id_bound_cidrs and not _in_cidrs(call.client, role.secret_id_bound_cidrs):
        return refuse(f'source address "{call.client}" unauthorized by CIDR restrictions on the role')
    policies = list(role.token_policies) + ([] if role.token_no_default_policy else ["default"])
    ttl = role.token_ttl or role.token_max_ttl or MAX_LEASE_TTL
    token = mount.system.issue_token(sorted(set(policies)), ttl=ttl, bound_cidrs=bound or role.token_bound_cidrs)
    return Reply(
        200,
        auth={
            "client_token": token,
            "accessor": str(uuid.uuid4()),
            "policies": sorted(set(policies)),
            "token_policies": sorted(set(policies)),
            "metadata": {"role_name": role.name},
            "lease_duration": ttl,
            "renewable": True,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
            "num_uses": role.token_num_uses,
        },
    )


def _spend_secret_id(role: Role, secret_id: str, client: str) -> tuple[str | None, list[str]]:
    """The secret ID checked and one use spent (deleted at its last); an expired one is gone, as after a tidy."""
    if not secret_id:
        return "missing secret_id", []
    entry = role.secret_ids.get(secret_id)
    if entry is not None and entry.expires_at is not None and time.time() >= entry.expires_at:
        del role.secret_ids[secret_id]
        entry = None
    if entry is None:
        return "invalid role or secret ID", []
    if entry.cidr_list and not _in_cidrs(client, entry.cidr_list):
        return f'source address "{client}" unauthorized by CIDR restrictions on the secret ID', []
    if entry.num_uses == 1:
        del role.secret_ids[secret_id]
    elif entry.num_uses > 1:
        entry.num_uses -= 1
    return None, entry.token_bound_cidrs


_TOKEN_FIELDS = {
    "token_bound_cidrs": "comma_strings",
    "token_explicit_max_ttl": "duration",
    "token_max_ttl": "duration",
    "token_no_default_policy": "bool",
    "token_period": "duration",
    "token_policies": "comma_strings",
    "token_type": "string",
    "token_ttl": "duration",
    "token_num_uses": "int",
    "token_strictly_bind_ip": "bool",
}
_ROLE = f"role/(?P<role_name>{NAME})"
APPROLE_ROUTES = (
    Route("login", {"update": _login}, {"role_id": "string", "secret_id": "string"}, unauthenticated=True),
    Route(
        _ROLE,
        {"create": _role_write, "update": _role_write, "read": _role_read},
        {
            "role_name": "string",
            "bind_secret_id": "bool",
            "bound_cidr_list": "comma_strings",
            "secret_id_bound_cidrs": "comma_strings",
            "policies": "comma_strings",
            "secret_id_num_uses": "int",
            "secret_id_ttl": "duration",
            "period": "duration",
            "role_id": "string",
            "local_secret_ids": "bool",
            **_TOKEN_FIELDS,
        },
        exists=_role_exists,
    ),
    Route(f"{_ROLE}/role-id", {"read": _role_id_read}, {"role_name": "string", "role_id": "string"}),
    Route(
        f"{_ROLE}/secret-id/?",
        {"update": _secret_id_create},
        {
            "role_name": "string",
            "metadata": "string",
            "cidr_list": "comma_strings",
            "token_bound_cidrs": "comma_strings",
            "num_uses": "int",
            "ttl": "duration",
        },
    ),
)
