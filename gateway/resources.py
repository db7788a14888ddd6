"""Resource utilisation for the readiness report: memory, disk and database connections.

Read afresh on every ``/health/ready``. Each resource says ``ok``, or ``warn``
once its ``used_ratio`` reaches ``READINESS_RESOURCE_WARN_RATIO``. A warning
never makes readiness fail: every replica shares the pressure of the same
database, the same traffic and the same limits, and an orchestrator that pulled
each one out of rotation for it would turn a tight spot into an outage.
Figures are for people and alerts; the checks alone decide 503.

A figure that cannot be read (no ``/proc``, no cgroup, the database down) is
``null``; reading one never raises. The report names no community, no user and
no path.

Memory is this process's resident set (``/proc/self/status``), the gunicorn
per-worker limit (``GUNICORN_WORKER_MAX_RSS_MB``), and the memory cgroup's
limit and usage. The cgroup is found from ``/proc/self/cgroup`` under
:data:`CGROUP_ROOT` (v2 when ``cgroup.controllers`` is there, else v1's
``memory`` hierarchy); the effective limit is the lowest one set on the
process's cgroup and its ancestors, so a limit on a parent slice counts.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from django.conf import settings
from django.db import DatabaseError, connection

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
PROC_SELF_STATUS = Path("/proc/self/status")
# cgroup v1 writes "no limit" as its page counter's maximum (9223372036854771712 with 4 KiB pages).
UNLIMITED_BYTES = 1 << 60
MIB = 1024 * 1024

# Client connections (background processes have no database) against the slots an ordinary role may take.
CONNECTIONS_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE datid IS NOT NULL),
       current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - coalesce(current_setting('reserved_connections', true)::int, 0)
"""

Report = dict[str, Any]

logger = logging.getLogger(__name__)


class CgroupLayout(NamedTuple):
    """Where one cgroup version keeps the memory figures."""

    mount: Path
    controller: str  # as /proc/self/cgroup names it: "" is v2's unified hierarchy
    limit_file: str
    usage_file: str


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def used_ratio(used: int | None, limit: int | None) -> float | None:
    """``used / limit`` to four places; ``None`` when either is unknown or there is no limit."""
    if used is None or not limit:
        return None
    return round(used / limit, 4)


def resource_status(ratio: float | None) -> str:
    """``warn`` once ``ratio`` reaches ``READINESS_RESOURCE_WARN_RATIO``, else ``ok`` (also when unknown)."""
    if ratio is not None and ratio >= float(settings.READINESS_RESOURCE_WARN_RATIO):
        return "warn"
    return "ok"


def process_rss_bytes() -> int | None:
    """This process's resident set now (``VmRSS``; ``getrusage`` would give the peak)."""
    for line in (_read_text(PROC_SELF_STATUS) or "").splitlines():
        name, _, value = line.partition(":")
        if name == "VmRSS":
            kilobytes = value.split()[:1]  # "  154620 kB"
            return int(kilobytes[0]) * 1024 if kilobytes and kilobytes[0].isdigit() else None
    return None


def worker_max_rss_bytes() -> int | None:
    """The resident set above which gunicorn recycles a worker (config/gunicorn.py); ``None`` when off."""
    megabytes = int(settings.GUNICORN_WORKER_MAX_RSS_MB)
    return megabytes * MIB if megabytes > 0 else None


def cgroup_layout() -> CgroupLayout | None:
    """The memory cgroup layout under :data:`CGROUP_ROOT`: v2, v1, or ``None`` when there is neither."""
    if (CGROUP_ROOT / "cgroup.controllers").is_file():
        return CgroupLayout(CGROUP_ROOT, "", "memory.max", "memory.current")
    if (CGROUP_ROOT / "memory").is_dir():
        return CgroupLayout(CGROUP_ROOT / "memory", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes")
    return None


def own_cgroup(controller: str) -> PurePosixPath:
    """This process's cgroup in ``controller``'s hierarchy (``/`` when ``/proc/self/cgroup`` does not say)."""
    for line in (_read_text(PROC_SELF_CGROUP) or "").splitlines():
        fields = line.split(":", 2)  # hierarchy id, controllers (empty for v2), path
        if len(fields) == 3 and controller in fields[1].split(",") and fields[2].startswith("/"):  # noqa: PLR2004
            return PurePosixPath(fields[2])
    return PurePosixPath("/")


def cgroup_dirs(layout: CgroupLayout) -> list[Path]:
    """The process's cgroup directory and its ancestors' that exist here, innermost first.

    A container with its own cgroup namespace sees its cgroup as the mount itself; one without sees a path
    that is missing under the mount, and falls through to the mount, which is then the container's cgroup.
    """
    own = own_cgroup(layout.controller)
    candidates = [layout.mount.joinpath(*cgroup.parts[1:]) for cgroup in (own, *own.parents)]
    return [directory for directory in candidates if directory.is_dir()]


def parse_limit(text: str | None) -> int | None:
    """A cgroup memory limit in bytes; ``None`` for ``max``, v1's huge no-limit value or anything unreadable."""
    if text is None or not text.isdigit():
        return None
    limit = int(text)
    return limit if limit < UNLIMITED_BYTES else None


def cgroup_memory() -> tuple[int | None, int | None]:
    """The effective memory limit (lowest of the cgroup's and its ancestors') and the cgroup's usage, in bytes."""
    layout = cgroup_layout()
    if layout is None:
        return None, None
    directories = cgroup_dirs(layout)
    limits = [parse_limit(_read_text(directory / layout.limit_file)) for directory in directories]
    usages = [_read_int(directory / layout.usage_file) for directory in directories]
    limit = min((limit for limit in limits if limit is not None), default=None)
    usage = next((usage for usage in usages if usage is not None), None)
    return limit, usage


def memory_report() -> Report:
    """Resident set, the gunicorn worker limit, the cgroup's limit and usage, and usage over the limit."""
    limit, usage = cgroup_memory()
    ratio = used_ratio(usage, limit)
    return {
        "status": resource_status(ratio),
        "process_rss_bytes": process_rss_bytes(),
        "worker_max_rss_bytes": worker_max_rss_bytes(),
        "cgroup_limit_bytes": limit,
        "cgroup_usage_bytes": usage,
        "used_ratio": ratio,
    }


def existing_ancestor(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists: the filesystem a state directory not yet made will be on."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def disk_report() -> Report | None:
    """Free and total bytes of the filesystem holding ``LOCAL_STATE_DIR`` (exports, archives); ``None`` if unreadable.

    ``used_ratio`` is used over used plus free, as ``df`` counts it: blocks reserved for root are not space the
    service can write.
    """
    try:
        usage = shutil.disk_usage(existing_ancestor(Path(settings.LOCAL_STATE_DIR)))
    except OSError:
        return None
    ratio = used_ratio(usage.used, usage.used + usage.free)
    return {"status": resource_status(ratio), "free_bytes": usage.free, "total_bytes": usage.total, "used_ratio": ratio}


def database_connections_report() -> Report | None:
    """Client connections on the whole server against ``max_connections`` less the reserved slots.

    Server-wide, because ``max_connections`` is. ``None`` when the database cannot answer.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute(CONNECTIONS_SQL)
            in_use, available = cursor.fetchone()
    except DatabaseError:
        return None
    ratio = used_ratio(int(in_use), int(available))
    return {
        "status": resource_status(ratio),
        "in_use": int(in_use),
        "max_connections": int(available),
        "used_ratio": ratio,
    }


def _guarded(name: str, read: Callable[[], Report | None]) -> Report | None:
    """``read()``, or ``None`` if it fails in a way nobody foresaw: a figure must never break the probe."""
    try:
        return read()
    except Exception as error:  # noqa: BLE001 - the probe answers whatever a figure does; the type is logged
        logger.warning("readiness resource %s unreadable: %s", name, type(error).__name__)
        return None


def resources_report(*, database_up: bool) -> dict[str, Report | None]:
    """Every resource's figures; the database is not asked again when its check already found it down."""
    return {
        "memory": _guarded("memory", memory_report),
        "disk": _guarded("disk", disk_report),
        "database_connections": _guarded("database_connections", database_connections_report) if database_up else None,
    }
