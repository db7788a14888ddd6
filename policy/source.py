"""The policy files on disk: modules, tests, data, and the revision that names them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = "data.json"
TEST_SUFFIX = "_test.rego"


@dataclass(frozen=True)
class PolicySource:
    """Rego modules, Rego tests and the data document of one policy directory."""

    modules: dict[str, str]
    tests: dict[str, str]
    data_json: str

    @classmethod
    def from_directory(cls, directory: Path) -> PolicySource:
        """Read ``*.rego`` (tests are ``*_test.rego``) and ``data.json`` below ``directory``."""
        modules: dict[str, str] = {}
        tests: dict[str, str] = {}
        for path in sorted(directory.rglob("*.rego")):
            name = path.relative_to(directory).as_posix()
            (tests if name.endswith(TEST_SUFFIX) else modules)[name] = path.read_text(encoding="utf-8")
        data_path = directory / DATA_FILE
        data_json = data_path.read_text(encoding="utf-8") if data_path.exists() else "{}"
        return cls(modules=modules, tests=tests, data_json=data_json)

    @property
    def revision(self) -> str:
        """A hash of the policy modules and data (tests excluded: they do not change decisions)."""
        digest = hashlib.sha256()
        for name, text in sorted(self.modules.items()):
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        digest.update(DATA_FILE.encode() + b"\0" + self.data_json.encode())
        return "sha256:" + digest.hexdigest()
