"""docker-compose.yml cannot run here (no registry); check its structure instead."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.main import get_command

from tributary.cli import cli
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = ("topics", "gateway", "worker", "projector")


def test_production_topology_is_complete() -> None:
    assert {"kafka", "redis", "clickhouse", "triton", *OURS} <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_long_running_services_have_healthchecks() -> None:
    for name, service in SERVICES.items():
        if name != "topics":
            assert "healthcheck" in service, name


def test_our_commands_exist_in_the_cli() -> None:
    commands = set(get_command(cli).commands)  # type: ignore[attr-defined]
    for name in OURS:
        assert SERVICES[name]["command"][0] in commands, name


def test_our_env_vars_are_real_settings() -> None:
    fields = {f"TRIBUTARY_{name.upper()}" for name in Settings.model_fields}
    for name in OURS:
        env = SERVICES[name]["environment"]
        assert set(env) <= fields, set(env) - fields
        Settings(**{k.removeprefix("TRIBUTARY_").lower(): v for k, v in env.items()})


def test_healthchecks_use_our_health_endpoints() -> None:
    for name in ("gateway", "worker", "projector"):
        assert "/healthz/ready" in " ".join(SERVICES[name]["healthcheck"]["test"]), name


def test_a_projector_bound_beyond_loopback_carries_the_admin_credential() -> None:
    env = SERVICES["projector"]["environment"]
    assert env["TRIBUTARY_PROJECTOR_HOST"] == "0.0.0.0"
    # Compose refuses to start without them (`${VAR:?...}`), as the projector would.
    for name in ("TRIBUTARY_ADMIN_KEY_SHA256", "TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD"):
        assert env[name].startswith(f"${{{name}:?"), name
    manifests = list(yaml.safe_load_all((ROOT / "infra" / "k8s" / "tributary.yaml").read_text()))
    projector = next(m for m in manifests if m["metadata"]["name"] == "projector")
    variables = {
        e["name"]: e for e in projector["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert variables["TRIBUTARY_PROJECTOR_HOST"]["value"] == "0.0.0.0"
    for name in ("TRIBUTARY_ADMIN_KEY_SHA256", "TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD"):
        assert "secretKeyRef" in variables[name]["valueFrom"], name


def test_clickhouse_guards_its_default_user_and_its_system_tables() -> None:
    import xml.etree.ElementTree as ET

    clickhouse = SERVICES["clickhouse"]
    assert clickhouse["environment"]["CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_PASSWORD:?")
    mounts = {v.split(":")[0]: v.split(":")[1] for v in clickhouse["volumes"]}
    assert mounts["./infra/clickhouse/access.xml"].startswith("/etc/clickhouse-server/config.d/")
    improvements = ET.parse(ROOT / "infra" / "clickhouse" / "access.xml").find(
        "access_control_improvements"
    )
    assert improvements is not None
    for setting in (
        "select_from_system_db_requires_grant",
        "select_from_information_schema_requires_grant",
    ):
        assert improvements.findtext(setting) == "true", setting
