"""The pieces under the end-to-end test: Kong's upstream, the admin API double, the lock, the migrations check."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from gateway import bluegreen, migrations_compat
from gateway.kong import UPSTREAM, kong_config
from tests.doubles.kong import KongDouble
from tests.doubles.kong_admin import KongAdminDouble


def _admin(admin: KongAdminDouble, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(admin.url + path, data=body, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310 - loopback
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        data = error.read()
        return error.code, json.loads(data) if data else None


@pytest.fixture
def admin() -> Any:
    double = KongAdminDouble().start()
    yield double
    double.stop()


def test_the_upstream_has_both_colours_and_keeps_the_service_tls_name() -> None:
    config = kong_config(targets={"blue": ("10.0.0.1:8443", 0), "green": ("10.0.0.2:8443", 100)})

    upstream = config["upstreams"][0]
    assert config["services"][0]["url"] == f"https://{UPSTREAM}"
    assert upstream["host_header"] == "gateway.internal"
    assert {target["target"]: target["weight"] for target in upstream["targets"]} == {
        "10.0.0.1:8443": 0,
        "10.0.0.2:8443": 100,
    }


@pytest.mark.parametrize("targets", [{"blue": ("a:1", 0), "green": ("b:1", 0)}, {"purple": ("a:1", 100)}])
def test_a_configuration_that_sends_traffic_nowhere_is_refused(targets: dict[str, tuple[str, int]]) -> None:
    with pytest.raises(ValueError, match="target"):
        kong_config(targets=targets)


def test_the_kong_double_never_picks_a_target_of_weight_zero() -> None:
    config = kong_config(targets={"blue": ("127.0.0.1:1", 0), "green": ("127.0.0.1:2", 100)})
    double = KongDouble.__new__(KongDouble)
    double.config, double._balanced = config, 0

    picks = {double.pick_target(UPSTREAM) for _ in range(50)}

    assert picks == {("127.0.0.1", 2)}


def test_the_admin_double_loads_a_configuration_then_answers_304_for_the_same_hash(admin: KongAdminDouble) -> None:
    body = json.dumps(kong_config()).encode()

    first, entities = _admin(admin, "POST", "/config?check_hash=1", body)
    again, _ = _admin(admin, "POST", "/config?check_hash=1", body)
    _, status = _admin(admin, "GET", "/status")
    _, targets = _admin(admin, "GET", f"/upstreams/{UPSTREAM}/targets")

    assert (first, again) == (201, 304)
    assert "upstreams" in entities
    assert status["configuration_hash"] != "0" * 32
    assert [target["weight"] for target in targets["data"]] == [100, 0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "expected a declarative configuration"),
        (json.dumps({"_format_version": "1.1"}).encode(), "declarative config is invalid"),
    ],
)
def test_the_admin_double_refuses_what_kong_refuses(admin: KongAdminDouble, body: bytes, message: str) -> None:
    status, error = _admin(admin, "POST", "/config", body)

    assert status == 400
    assert message in error["message"]
    assert admin.config is None


def test_entity_writes_are_405_in_db_less_mode(admin: KongAdminDouble) -> None:
    status, error = _admin(admin, "POST", "/upstreams", b"{}")

    assert status == 405
    assert error["name"] == "operation unsupported"
    assert "when not using a database" in error["message"]


def test_switch_reports_kong_refusing_the_configuration(admin: KongAdminDouble) -> None:
    with pytest.raises(bluegreen.DeploymentError, match="Kong refused"):
        bluegreen.post_config(admin.url, {"_format_version": "2.1"})


def test_only_one_operation_runs_at_a_time(tmp_path: Path) -> None:
    refused = pytest.raises(bluegreen.DeploymentError, match="another blue/green operation")
    with override_settings(LOCAL_STATE_DIR=tmp_path), bluegreen.locked(), refused:
        bluegreen.switch(admin_url="http://127.0.0.1:9")


def test_a_crash_while_writing_leaves_the_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(LOCAL_STATE_DIR=tmp_path):
        bluegreen.save_state({"live": "blue", "colours": {}, "config": None, "previous_config": None})

        def crash(*args: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr("gateway.bluegreen.os.replace", crash)
        with pytest.raises(KeyboardInterrupt):
            bluegreen.save_state({"live": "green", "colours": {}, "config": None, "previous_config": None})

        assert bluegreen.load_state()["live"] == "blue"


def test_the_error_rate_counts_only_5xx_requests() -> None:
    metrics = (
        'gateway_http_requests_total{method="GET",route="/api/v1/me",status="200"} 97.0\n'
        'gateway_http_requests_total{method="GET",route="/api/v1/me",status="503"} 3.0\n'
        'gateway_http_request_duration_seconds_count{method="GET",route="/api/v1/me"} 100.0\n'
    )

    assert bluegreen.error_rate(metrics) == (3.0, 100.0)


DROP_COLUMN = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("studies", "{last}")]
    operations = [migrations.RemoveField(model_name="study", name="irb_approval_number")]
"""
ADD_FIELD = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("studies", "{last}")]
    operations = [migrations.AddField(model_name="study", name="site_note", field=models.TextField(null=True))]
"""


def _with_new_studies_migration(tmp_path: Path, source: str) -> tuple[int, int]:
    """Lint with the studies app's migrations plus one new one (a copy of the package, not the tree)."""
    package = tmp_path / "bluegreen_studies_migrations"
    original = Path(__file__).resolve().parents[2] / "services" / "studies" / "migrations"
    package.mkdir()
    names = sorted(path.stem for path in original.glob("0*.py"))
    for path in original.glob("*.py"):
        (package / path.name).write_text(path.read_text())
    (package / "0099_new.py").write_text(source.replace("{last}", names[-1]))
    sys.path.insert(0, str(tmp_path))
    try:
        with override_settings(MIGRATION_MODULES={"studies": "bluegreen_studies_migrations"}):
            return migrations_compat.lint()
    finally:
        sys.path.remove(str(tmp_path))
        for module in [name for name in sys.modules if name.startswith("bluegreen_studies_migrations")]:
            del sys.modules[module]


@pytest.mark.django_db
def test_a_new_migration_that_drops_a_column_is_refused(tmp_path: Path) -> None:
    already_erroneous, already_linted = migrations_compat.lint()  # the tree's own migrations past the baseline
    erroneous, linted = _with_new_studies_migration(tmp_path, DROP_COLUMN)

    assert (already_erroneous, erroneous, linted) == (0, 1, already_linted + 1)


@pytest.mark.django_db
def test_a_new_nullable_column_is_accepted_and_the_baseline_is_not_linted(tmp_path: Path) -> None:
    already_erroneous, already_linted = migrations_compat.lint()
    erroneous, linted = _with_new_studies_migration(tmp_path, ADD_FIELD)

    assert (already_erroneous, erroneous, linted) == (0, 0, already_linted + 1)
