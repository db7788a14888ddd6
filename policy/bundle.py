"""The policy as an OPA bundle: written as ``opa build -b`` writes one, read back as OPA's ``bundle`` package reads it.

Format, from open-policy-agent/opa at v1.9.0:

- a gzipped tar whose members are named ``/`` + their path, regular files of
  mode 0600 (``internal/file/archive/tarball.go:27`` ``WriteFile``);
- ``/data.json``, the whole data document, then every ``.rego`` module at its
  path below the policy directory, then ``/.manifest`` (``v1/bundle/bundle.go``
  ``Writer.Write`` :933 and ``writeManifest`` :1028);
- the manifest is ``{"revision", "roots", "rego_version"}`` (``Manifest``,
  ``bundle.go:130``; ``opa build`` sets ``rego_version`` 1 through ``SetRegoVersion``
  in ``v1/compile/compile.go``), roots taken from the policy directory's own
  ``.manifest`` as ``opa build -b`` does, and ``[""]`` (everything) without one;
- a ``data.json`` member is mounted at its directory's path
  (``bundle.go:1664`` ``insertValue`` and ``getNormalizedPath``), and the reader
  refuses overlapping roots, and a module or data outside the roots, with
  OPA's own messages (``Manifest.validateAndInjectDefaults``, ``bundle.go:325``).

Tests (``*_test.rego``) stay out, as ``opa build --ignore '*_test.rego'`` keeps
them out. ``opa build`` also reformats the modules (``opa fmt``); this writer
keeps them as they are, so the two archives load the same but differ byte for
byte.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy.source import DATA_FILE, TEST_SUFFIX, PolicySource

MANIFEST_FILE = ".manifest"
REGO_V1 = 1
_PACKAGE_RE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)


class BundleError(ValueError):
    """A bundle OPA would refuse to load (the message says why, in OPA's words where it has them)."""


@dataclass(frozen=True)
class Bundle:
    """What a bundle holds: its manifest's revision and roots, its modules by path, its data document."""

    revision: str
    roots: list[str]
    modules: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)

    def source(self) -> PolicySource:
        """The bundle as a policy directory's source (no tests), for an engine to load."""
        return PolicySource(modules=self.modules, tests={}, data_json=json.dumps(self.data))


def directory_roots(directory: Path) -> list[str]:
    """The roots of the directory's own ``.manifest``, or ``[""]`` as OPA's ``Manifest.Init`` gives without one."""
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        return [""]
    roots = json.loads(manifest.read_text(encoding="utf-8")).get("roots")
    if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
        raise BundleError(f"{manifest}: roots must be a list of strings")
    return roots


def _member(archive: tarfile.TarFile, path: str, content: bytes) -> None:
    info = tarfile.TarInfo("/" + path.lstrip("/"))
    info.size, info.mode, info.type = len(content), 0o600, tarfile.REGTYPE
    archive.addfile(info, io.BytesIO(content))


def _go_json(value: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` writes it here: compact, map keys sorted, a newline after."""
    return (json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n").encode()


def write(directory: Path, *, revision: str) -> bytes:
    """The bundle of the policy in ``directory`` (modules and ``data.json``, no tests), checked as OPA checks it."""
    source = PolicySource.from_directory(directory)
    bundle = Bundle(
        revision=revision,
        roots=directory_roots(directory),
        modules=dict(source.modules),
        data=json.loads(source.data_json),
    )
    validate(bundle)
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as archive,
    ):
        _member(archive, DATA_FILE, _go_json(bundle.data))
        for path, text in sorted(bundle.modules.items()):
            _member(archive, path, text.encode())
        manifest = {"revision": revision, "roots": bundle.roots, "rego_version": REGO_V1}
        # Go encodes a struct's fields in their declared order, not sorted.
        _member(archive, MANIFEST_FILE, (json.dumps(manifest, separators=(",", ":")) + "\n").encode())
    return buffer.getvalue()


def _mount(data: dict[str, Any], member: str, value: Any) -> None:
    """Put a ``data.json``'s value at its directory's path (``bundle.go`` ``insertValue``)."""
    keys = [key for key in Path(member).parent.as_posix().lstrip("/.").split("/") if key]
    if not keys:
        if not isinstance(value, dict):
            raise BundleError(f"bundle load failed on {member}: the root data document must be an object")
        data.update(value)
        return
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def read(content: bytes) -> Bundle:
    """Read a bundle as OPA's ``bundle.Reader`` does (modules, data mounted by directory, manifest), then validate."""
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    manifest: dict[str, Any] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is None:
                    continue
                path, raw = member.name, extracted.read()
                if path.endswith(".rego"):
                    modules[path.lstrip("/")] = raw.decode("utf-8")
                elif Path(path).name == DATA_FILE:
                    _mount(data, path, json.loads(raw))
                elif path.endswith(MANIFEST_FILE):
                    manifest = json.loads(raw)
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"not a bundle OPA can read: {error}") from error
    roots = manifest.get("roots", [""])
    bundle = Bundle(revision=str(manifest.get("revision", "")), roots=roots, modules=modules, data=data)
    validate(bundle)
    return bundle


def _contains(root: str, path: str) -> bool:
    """OPA's ``rootContains``: the empty root holds everything; otherwise segment by segment."""
    root_segments, path_segments = root.split("/"), path.split("/")
    if root_segments == [""]:
        return True
    return len(root_segments) <= len(path_segments) and path_segments[: len(root_segments)] == root_segments


def _roots_contain(roots: list[str], path: str) -> bool:
    return any(_contains(root, path) for root in roots)


def _check_data(roots: list[str], value: Any, path: str = "") -> None:
    """Every data path lies under a root, or is an object on the way to one (``validateAndInjectDefaults``'s dfs)."""
    if _roots_contain(roots, path):
        return
    if isinstance(value, dict) and any(_contains(path, root) for root in roots):
        for key, child in value.items():
            _check_data(roots, child, f"{path}/{key}".strip("/"))
        return
    raise BundleError(
        f"manifest roots {roots} do not permit data at path '/{path}' (hint: check bundle directory structure)"
    )


def validate(bundle: Bundle) -> None:
    """Refuse what OPA refuses on activation: overlapping roots, and modules or data outside the roots."""
    if not isinstance(bundle.roots, list) or not all(isinstance(root, str) for root in bundle.roots):
        raise BundleError("manifest roots must be a list of strings")
    roots = [root.strip("/") for root in bundle.roots]
    for index, root in enumerate(roots):
        for other in roots[index + 1 :]:
            if _contains(root, other) or _contains(other, root):
                raise BundleError(f"manifest has overlapped roots: '{root}' and '{other}'")
    for path, text in bundle.modules.items():
        if path.endswith(TEST_SUFFIX):
            raise BundleError(f"{path}: tests do not belong in the bundle")
        package = _PACKAGE_RE.search(text)
        if package is None or not _roots_contain(roots, package.group(1).replace(".", "/")):
            name = package.group(1) if package else "(no package)"
            raise BundleError(f"manifest roots {roots} do not permit 'data.{name}' in module '/{path}'")
    _check_data(roots, bundle.data)
