"""What deploy/opa ships: the bundle (built by ``policy_bundle`` or ``opa build``) and the sidecar's configuration.

The bundle format is OPA's at v1.9.0 (``v1/bundle/bundle.go``): the double
loads what ``policy_bundle`` writes and reports its revision, as OPA would in
every decision's provenance. No real OPA has loaded these files (none can run
here); the tests hold them to what OPA's source reads.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from policy import bundle
from policy.engine import OpaEngine
from tests.doubles.opa import ANSWER_DEADLINE_SECONDS, BUNDLE_NAME, REPOSITORY_POLICY, running_opa
from tests.policy.edge_inputs import BASE

DEPLOY = Path(settings.OPA_AUTHZ_POLICY_DIR)
REPOSITORY = DEPLOY.parents[1]


def write_bundle(out: Path, *options: str) -> str:
    stdout = io.StringIO()
    call_command("policy_bundle", "--out", str(out), *options, stdout=stdout)
    return stdout.getvalue()


def members(content: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        return {member.name: member for member in archive.getmembers()}


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rego"
    shutil.copytree(REPOSITORY_POLICY, target)
    return target


def test_the_bundle_policy_bundle_writes_is_loaded_by_the_double_which_reports_its_revision(tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"

    message = write_bundle(out, "--revision", "3f2c1ab")

    assert message.startswith(f"wrote {out}: revision 3f2c1ab, roots ['gateway'], 1 module(s)")
    with running_opa(out.read_bytes()) as (url, _):
        opa = OpaEngine(url, timeout=ANSWER_DEADLINE_SECONDS)
        opa.check_ready()
        decision = opa.decide(BASE)
    assert decision.allow
    assert decision.revision == f"opa:{BUNDLE_NAME}=3f2c1ab"


def test_the_bundle_holds_the_policy_and_its_data_as_opa_writes_them_and_no_test(tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    write_bundle(out, "--revision", "r1")

    found = members(out.read_bytes())

    assert list(found) == ["/data.json", "/gateway/authz.rego", "/.manifest"]
    assert all(member.isfile() and member.mode == 0o600 for member in found.values())
    with tarfile.open(out, mode="r:gz") as archive:
        manifest = archive.extractfile("/.manifest")
        data = archive.extractfile("/data.json")
        assert manifest is not None
        assert data is not None
        assert manifest.read() == b'{"revision":"r1","roots":["gateway"],"rego_version":1}\n'
        assert json.loads(data.read()) == json.loads((REPOSITORY_POLICY / "data.json").read_text(encoding="utf-8"))


def test_the_manifest_roots_cover_the_policy_and_its_data_and_nothing_of_system(tmp_path: Path) -> None:
    read = bundle.read(bundle.write(REPOSITORY_POLICY, revision="r1"))

    packages = [re.findall(r"^package ([\w.]+)", text, re.MULTILINE) for text in read.modules.values()]
    assert packages == [["gateway.authz"]]
    assert read.roots == ["gateway"]
    assert set(read.data) == {"gateway"}
    # The API policy (system.authz) is loaded beside the bundle: no policy change can reach it.
    assert not any(root == "" or root.startswith("system") for root in read.roots)


@pytest.mark.parametrize(
    ("manifest", "data_change", "refusal"),
    [
        ({"roots": ["elsewhere"]}, None, "do not permit 'data.gateway.authz'"),
        ({"roots": ["gateway", "gateway/matrix"]}, None, "overlapped roots"),
        ({"roots": ["gateway"]}, {"system": {"authz": {"allow": True}}}, "do not permit data at path '/system'"),
    ],
)
def test_a_bundle_opa_would_refuse_is_not_written(
    manifest: dict[str, list[str]],
    data_change: dict[str, object] | None,
    refusal: str,
    policy_copy: Path,
    tmp_path: Path,
) -> None:
    (policy_copy / ".manifest").write_text(json.dumps(manifest), encoding="utf-8")
    if data_change:
        data = json.loads((policy_copy / "data.json").read_text(encoding="utf-8"))
        (policy_copy / "data.json").write_text(json.dumps({**data, **data_change}), encoding="utf-8")
    out = tmp_path / "bundle.tar.gz"

    with pytest.raises(CommandError, match=re.escape(refusal)):
        write_bundle(out, "--revision", "r1", "--dir", str(policy_copy))
    assert not out.exists()


@pytest.mark.parametrize("revision", ["", "two words", "x" * 201])
def test_a_bundle_needs_a_revision_to_report(revision: str, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--revision"):
        write_bundle(tmp_path / "b.tar.gz", "--revision", revision)


def test_the_reader_mounts_a_data_file_at_its_directory_as_opa_does() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in {
            "/gateway/matrix/data.json": b'{"roles": {}}',
            "/.manifest": b'{"revision": "r9", "roots": ["gateway"]}',
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))

    read = bundle.read(buffer.getvalue())

    assert read.data == {"gateway": {"matrix": {"roles": {}}}}
    assert read.revision == "r9"


def test_what_is_not_a_bundle_is_refused() -> None:
    with pytest.raises(bundle.BundleError, match="not a bundle"):
        bundle.read(b"not a tarball")


def test_the_build_script_writes_a_bundle_the_double_loads(tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    environment = {**os.environ, "PYTHON": sys.executable, "DJANGO_SETTINGS_MODULE": "config.settings.test"}

    completed = subprocess.run(  # noqa: S603 - the repository's own script
        [str(DEPLOY / "build-bundle.sh"), "script-rev", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        cwd=REPOSITORY,
    )

    assert completed.returncode == 0, completed.stderr
    assert bundle.read(out.read_bytes()).revision == "script-rev"


# --- the sidecar's configuration (v1/config/config.go, v1/plugins/bundle, v1/plugins/logs @v1.9.0) --


def test_the_configuration_loads_the_bundle_from_a_file_and_logs_decisions_to_the_console() -> None:
    config = yaml.safe_load((DEPLOY / "config.yaml").read_text(encoding="utf-8"))

    assert set(config) == {"bundles", "decision_logs", "labels"}
    [(name, source)] = config["bundles"].items()
    assert name == BUNDLE_NAME  # the name the service's revision label carries (opa:authz=<rev>)
    assert source["resource"].startswith("file:///")
    assert config["decision_logs"] == {"console": True}
    # No default_decision: POST / is refused by system.authz anyway. No services: nothing to hand a secret to.
    assert "default_decision" not in config
    assert "services" not in config


def test_the_documented_command_line_guards_the_api_with_the_shipped_policy() -> None:
    for text in ((DEPLOY / "config.yaml").read_text(encoding="utf-8"), docs_policy()):
        command = text[text.index("opa run --server") :].split("\n\n")[0]
        for flag in ("--authentication=token", "--authorization=basic", "--config-file=", "system.authz.rego"):
            assert flag in command, flag


def docs_policy() -> str:
    return (REPOSITORY / "docs" / "operations" / "policy.md").read_text(encoding="utf-8")
