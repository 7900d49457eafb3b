from __future__ import annotations

import pytest

from infra.local.kafka import server_properties
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
    props = server_properties(Settings(kafka_port=1, kafka_controller_port=2), tmp_path)
    lines = set(props.splitlines())
    assert "process.roles=broker,controller" in lines
    assert "controller.quorum.voters=1@127.0.0.1:2" in lines
    assert "transaction.state.log.replication.factor=1" in lines
    assert "auto.create.topics.enable=false" in lines
    assert f"log.dirs={tmp_path}" in lines
