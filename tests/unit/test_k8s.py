"""infra/k8s/tributary.yaml: valid against the Kubernetes schemas (offline), and scaled on
the consumer groups the code really uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

from projections.tables import PROJECTIONS
from schemas.groups import GROUPS, PROJECTOR_CLICKHOUSE, of_agent
from streams.events.counter import EventCounter
from streams.jobs.commands import Commands
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS: list[dict[str, Any]] = list(
    yaml.safe_load_all((ROOT / "infra" / "k8s" / "tributary.yaml").read_text())
)
CONFIG = next(m for m in MANIFESTS if m["kind"] == "ConfigMap")["data"]
SETTINGS = Settings(**{k.removeprefix("TRIBUTARY_").lower(): v for k, v in CONFIG.items()})
# Each process: its port, and the setting that makes it listen beyond loopback.
PROCESSES = {
    "gateway": (8080, "TRIBUTARY_GATEWAY_HOST"),
    "worker": (6066, "TRIBUTARY_WORKER_WEB_HOST"),
    "projector": (8124, "TRIBUTARY_PROJECTOR_HOST"),
}


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in MANIFESTS if m["kind"] == kind}


@pytest.mark.parametrize(
    "manifest", MANIFESTS, ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_every_manifest_validates_against_the_kubernetes_schemas(manifest: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(manifest, latest_version(), strict=True)
    except SchemaNotFoundError:
        # KEDA's CRDs are not in the Kubernetes schemas; test_keda_* checks them.
        assert manifest["apiVersion"].startswith("keda.sh/"), manifest["kind"]


def test_keda_scales_each_process_on_every_group_and_topic_it_reads() -> None:
    scaled = of_kind("ScaledObject")
    for process in ("worker", "projector"):
        triggers = scaled[process]["spec"]["triggers"]
        found = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers}
        expected = {
            (group.physical(SETTINGS.namespace), topic.physical(SETTINGS.namespace))
            for group in GROUPS
            if group.process == process
            for topic in group.topics
        }
        assert found == expected, process
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            assert trigger["metadata"]["bootstrapServers"] == SETTINGS.kafka_bootstrap
        assert scaled[process]["spec"]["maxReplicaCount"] <= SETTINGS.partitions


def test_the_registry_names_the_groups_the_code_uses() -> None:
    assert {p.topic for p in PROJECTIONS} == set(PROJECTOR_CLICKHOUSE.topics)
    for agent in (EventCounter, Commands):
        assert of_agent(agent.name).process == "worker"


def test_topics_are_replicated_in_the_cluster() -> None:
    assert (SETTINGS.replication_factor, SETTINGS.min_insync_replicas) == (3, 2)


def test_every_process_is_probed_where_it_listens_and_has_a_disruption_budget() -> None:
    workloads = {**of_kind("Deployment"), **of_kind("StatefulSet")}
    budgets = {
        b["spec"]["selector"]["matchLabels"]["app"] for b in of_kind("PodDisruptionBudget").values()
    }
    for name, (port, host_setting) in PROCESSES.items():
        [container] = workloads[name]["spec"]["template"]["spec"]["containers"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == port, (name, probe)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env[host_setting] == "0.0.0.0", name
        assert name in budgets, name


def test_the_gateway_scales_on_cpu_against_a_request() -> None:
    hpa = of_kind("HorizontalPodAutoscaler")["gateway"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    [container] = of_kind("Deployment")["gateway"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]
