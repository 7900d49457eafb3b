"""The alert rules and the Grafana dashboard (infra/monitoring/) name only metrics the
processes export, with the labels they carry, and are well formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import gateway.metrics
import gateway.push_hub
import projections.metrics
import streams.metrics
import tributary.heartbeats
import tributary.ops_metrics

MONITORING = Path(__file__).resolve().parents[2] / "infra" / "monitoring"
METRIC = re.compile(r"\btributary_[a-z0-9_]+")
LABEL_FILTER = re.compile(r"(tributary_[a-z0-9_]+)\{([^}]*)\}")
DURATION = re.compile(r"^\d+[smhd]$")

# Imported for what they register.
assert gateway.metrics and gateway.push_hub and projections.metrics and streams.metrics
assert tributary.heartbeats and tributary.ops_metrics


def exported() -> dict[str, set[str]]:
    """Every sample name the processes' registries hold, with its label names."""
    return {
        name: set(getattr(collector, "_labelnames", ())) | {"le"}
        for name, collector in REGISTRY._names_to_collectors.items()
    }


def check_expr(expr: str, names: dict[str, set[str]]) -> None:
    used = METRIC.findall(expr)
    assert used, f"no Tributary metric in {expr!r}"
    for name in used:
        assert name in names, f"{name} is not exported (in {expr!r})"
    for name, filters in LABEL_FILTER.findall(expr):
        for label in re.findall(r"([a-z_]+)\s*[!=~]+", filters):
            assert label in names[name], f"{name} has no label {label!r} (in {expr!r})"
    assert expr.count("(") == expr.count(")"), f"unbalanced parentheses in {expr!r}"


def test_every_alert_rule_is_complete_and_names_exported_metrics() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    names = exported()
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "TributaryConsumerLag",
        "TributaryDeadLettersGrowing",
        "TributaryJobLatencyP99",
        "TributaryStalledPartitions",
        "TributaryReadinessFlapping",
    }
    for alert in alerts:
        check_expr(alert["expr"], names)
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert DURATION.match(alert.get("for", "0s")), alert["alert"]


def test_the_dashboard_queries_exported_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    names = exported()
    targets = [t for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 8
    for target in targets:
        check_expr(target["expr"], names)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_check_catches_a_metric_that_does_not_exist() -> None:
    import pytest

    with pytest.raises(AssertionError, match="not exported"):
        check_expr("rate(tributary_no_such_thing_total[5m])", exported())
    with pytest.raises(AssertionError, match="no label"):
        check_expr('tributary_consumer_lag{nope="x"}', exported())
