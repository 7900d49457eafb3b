from __future__ import annotations

import pytest

from infra.local.kafka import nodes, server_properties
from infra.local.stack import settings_env
from schemas.topics import REGISTRY, by_name
from tributary.settings import Settings


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_KAFKA_PORT", "29092")
    monkeypatch.setenv("TRIBUTARY_NAMESPACE", "demo")
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:29092"
    assert settings.namespace == "demo"


def test_child_processes_see_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(namespace="abc", gateway_port=1234, clickhouse_url=None)
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_namespace_is_validated() -> None:
    with pytest.raises(ValueError):
        Settings(namespace="Bad Name")


def test_registry_names_are_unique_and_namespaced() -> None:
    names = [spec.name for spec in REGISTRY]
    assert len(names) == len(set(names))
    assert by_name("events.ingest").physical("ns") == "ns.events.ingest"
    with pytest.raises(KeyError, match="known"):
        by_name("nope")


def test_broker_config_is_single_node_kraft(tmp_path) -> None:
    settings = Settings(kafka_port=1, kafka_controller_port=2)
    props = server_properties(settings, nodes(settings)[0], tmp_path)
    lines = set(props.splitlines())
    assert "process.roles=broker,controller" in lines
    assert "controller.quorum.voters=1@127.0.0.1:2" in lines
    assert "transaction.state.log.replication.factor=1" in lines
    assert "auto.create.topics.enable=false" in lines
    assert f"log.dirs={tmp_path}" in lines


def test_three_nodes_make_one_quorum_and_replicate_everything(tmp_path) -> None:
    settings = Settings(kafka_port=9092, kafka_controller_port=9093, kafka_brokers=3)
    assert settings.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    third = nodes(settings)[2]
    assert (third.id, third.name, third.port, third.controller_port) == (3, "kafka-3", 9096, 9097)
    lines = set(server_properties(settings, third, tmp_path).splitlines())
    voters = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    for line in (
        "node.id=3",
        f"controller.quorum.voters={voters}",
        "listeners=PLAINTEXT://127.0.0.1:9096,CONTROLLER://127.0.0.1:9097",
        "advertised.listeners=PLAINTEXT://127.0.0.1:9096",
        "offsets.topic.replication.factor=3",
        "transaction.state.log.replication.factor=3",
        "transaction.state.log.min.isr=2",
        "default.replication.factor=3",
        "min.insync.replicas=2",
    ):
        assert line in lines, line


def test_a_cluster_started_elsewhere_is_named_by_its_bootstrap_list() -> None:
    settings = Settings(kafka_bootstrap_servers="k1:9092, k2:9092,k3:9092")
    assert settings.kafka_hosts == ["k1:9092", "k2:9092", "k3:9092"]
    assert settings.replication_factor == 3
    one_name = Settings(kafka_bootstrap_servers="kafka-bootstrap:9092", kafka_replication_factor=3)
    assert (one_name.replication_factor, one_name.min_insync_replicas) == (3, 2)
