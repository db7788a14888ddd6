"""deploy/prometheus and deploy/grafana: well formed, and every metric they query is one the service exposes.

The names are parsed out of each PromQL expression and looked up in the
service's own exposition after the walkthrough, so a renamed family (or a
rule written for a metric nobody records) fails here, not on an operator's pager.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.conftest import Samples

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "le"}
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and numbers left out)."""
    stripped = _STRINGS.sub(" ", expression)
    stripped = _MATCHERS.sub(" ", stripped)
    stripped = _RANGES.sub(" ", stripped)
    stripped = _GROUPING.sub(" ", stripped)
    return {name for name in _IDENTIFIER.findall(stripped) if name not in PROMQL_WORDS and not name[0].isdigit()}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    document = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def exposed(after_walkthrough: tuple[Samples, Samples, dict[str, Any]]) -> set[str]:
    return {name for name, _ in after_walkthrough[1]}


def test_the_name_parser_finds_selected_metrics_only() -> None:
    expression = 'sum by (le, route) (rate(a_total{status=~"5.."}[5m])) / clamp_min(b_seconds, 1e-9) > 0.02'

    assert metric_names(expression) == {"a_total", "b_seconds"}


def test_the_alert_rules_name_the_alerts_operators_expect() -> None:
    rules = alert_rules()

    assert {rule["alert"] for rule in rules} >= {
        "AuditChainLagging",
        "DeadLetters",
        "PolicyUnavailable",
        "KeyProviderUnavailable",
        "HighErrorRate",
    }
    assert all(rule["expr"] and rule["labels"]["severity"] and rule["annotations"]["summary"] for rule in rules)


def test_every_metric_the_alert_rules_query_is_exposed(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    names = exposed(after_walkthrough)

    for rule in alert_rules():
        assert metric_names(rule["expr"]), rule["alert"]
        assert metric_names(rule["expr"]) <= names, rule["alert"]


def test_every_metric_the_dashboard_queries_is_exposed(
    after_walkthrough: tuple[Samples, Samples, dict[str, Any]],
) -> None:
    names = exposed(after_walkthrough)
    expressions = dashboard_expressions()

    assert len(expressions) >= 10
    for expression in expressions:
        assert metric_names(expression), expression
        assert metric_names(expression) <= names, expression


def test_the_scrape_config_sends_the_token_from_a_file_and_loads_the_rules() -> None:
    document = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = document["scrape_configs"]

    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}
    assert "credentials" not in job["authorization"]
    assert document["rule_files"] == ["alerts.yml"]


@pytest.mark.parametrize("path", ["prometheus/alerts.yml", "prometheus/prometheus.yml", "grafana/dashboard.json"])
def test_no_deploy_file_holds_a_secret(path: str) -> None:
    text = (DEPLOY / path).read_text().lower()

    assert not re.search(r"(password|secret|token)\s*[:=]\s*\S", text.replace("metrics_token", ""))
