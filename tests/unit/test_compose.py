"""docker-compose.yml's structure, on what Debian's docker-compose resolves it to. (It runs
for real in tests/integration/test_compose_run.py, marked slow: images take minutes.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from cli.main import cli
from infra.local.compose import SECRET_FILES, write_secrets
from infra.local.haproxy import config as haproxy_config
from infra.local.images import IMAGES
from tributary.settings import SECRETS, Settings

ROOT = Path(__file__).resolve().parents[2]
# The secret files compose mounts, made as `tributary secrets DIR` makes them.
SECRETS_DIR = Path(tempfile.mkdtemp(prefix="tributary-compose-secrets-"))
write_secrets(SECRETS_DIR)
SECRET_VALUES = {name: (SECRETS_DIR / name).read_text() for name in SECRET_FILES}


def resolved() -> dict:  # type: ignore[type-arg]
    """`docker-compose config`: the file validated, anchors merged, variables set."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: `make system` installs Debian's")
    done = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={**os.environ, "TRIBUTARY_SECRETS_DIR": str(SECRETS_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)  # type: ignore[no-any-return]


RAW = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
COMPOSE = resolved()
SERVICES = COMPOSE["services"]
GATEWAYS, WORKERS, BROKERS = ("gateway-1", "gateway-2"), ("worker-1", "worker-2"), (1, 2, 3)
OURS = ("topics", *GATEWAYS, *WORKERS, "projector")


def sources(service: dict) -> list[str]:  # type: ignore[type-arg]
    """What a service mounts (docker-compose 1.x prints `source:target:mode` strings)."""
    return [v.split(":")[0] if isinstance(v, str) else v["source"] for v in service["volumes"]]


def test_production_topology_is_complete() -> None:
    brokers = {f"kafka-{n}" for n in BROKERS}
    assert {"haproxy", "redis", "clickhouse", "triton", "docker", *brokers, *OURS} <= set(SERVICES)
    voters = ",".join(f"{n}@kafka-{n}:9093" for n in BROKERS)
    for n in BROKERS:
        env = SERVICES[f"kafka-{n}"]["environment"]
        assert SERVICES[f"kafka-{n}"]["image"] == "tributary/kafka:local"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert (env["KAFKA_NODE_ID"], env["KAFKA_CONTROLLER_QUORUM_VOTERS"]) == (str(n), voters)
        for name in (
            "DEFAULT_REPLICATION_FACTOR",
            "OFFSETS_TOPIC_REPLICATION_FACTOR",
            "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[f"KAFKA_{name}"] == "3", name
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    settings = Settings(
        kafka_bootstrap_servers=SERVICES["projector"]["environment"][
            "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS"
        ]
    )
    assert settings.kafka_hosts == [f"kafka-{n}:9092" for n in BROKERS]
    assert settings.replication_factor == 3


def test_the_balancer_alone_publishes_the_port_and_runs_the_local_configuration() -> None:
    assert [p["published"] for p in SERVICES["haproxy"]["ports"]] in (["8080"], [8080])
    for name in GATEWAYS:
        assert "ports" not in SERVICES[name], name
    shipped = (ROOT / "infra" / "haproxy" / "haproxy.cfg").read_text()
    servers = [(name, f"{name}:8080") for name in GATEWAYS]
    assert shipped.split("\n", 2)[2] == haproxy_config("*:8080", servers)
    mounted = sources(SERVICES["haproxy"])
    assert str(ROOT / "infra" / "haproxy" / "haproxy.cfg") in mounted


def test_workers_reach_triton_and_a_docker_engine_each_with_its_own_volume() -> None:
    volumes = set()
    for name in WORKERS:
        env = SERVICES[name]["environment"]
        assert env["TRIBUTARY_TRITON_URL"] == "triton:8000"
        assert env["TRIBUTARY_DOCKER_HOST"] == "tcp://docker:2375"
        assert env["TRIBUTARY_WORKER_NAME"] == name
        [volume] = sources(SERVICES[name])
        volumes.add(volume)
    assert len(volumes) == len(WORKERS)
    [triton] = [image for image in IMAGES if image.name == "triton"]
    assert SERVICES["triton"]["image"] == triton.tag
    assert "requirements.txt" in triton.dockerfile.read_text()


def test_long_running_services_have_healthchecks() -> None:
    for name, service in SERVICES.items():
        if name != "topics":
            assert "healthcheck" in service, name


def test_our_long_running_processes_are_restarted() -> None:
    """The projector exits to resume from ClickHouse when it gives a parked insert up."""
    for name in (*GATEWAYS, *WORKERS, "projector", "dashboard"):
        assert SERVICES[name]["restart"] == "unless-stopped", name


def test_our_commands_exist_in_the_cli() -> None:
    commands = set(get_command(cli).commands)  # type: ignore[attr-defined]
    for name in OURS:
        assert SERVICES[name]["command"][0] in commands, name


def test_our_env_vars_are_real_settings() -> None:
    fields = {f"TRIBUTARY_{name.upper()}" for name in Settings.model_fields}
    files = {f"TRIBUTARY_{name.upper()}_FILE" for name in SECRETS}
    for name in OURS:
        env = SERVICES[name]["environment"]
        assert set(env) <= fields | files, set(env) - fields - files
        Settings(**{k.removeprefix("TRIBUTARY_").lower(): v for k, v in env.items() if k in fields})


def test_credentials_are_secret_files_never_environment_values() -> None:
    """Every credential reaches a service as a compose secret, mounted where its `_FILE`
    variable says; no secret's value is in any service's environment."""
    assert set(COMPOSE["secrets"]) == set(SECRET_FILES)
    for name, secret in COMPOSE["secrets"].items():
        assert Path(secret["file"]) == SECRETS_DIR / name
    for name, service in SERVICES.items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        for value in SECRET_VALUES.values():
            assert all(value not in v for v in env.values()), name
        mounted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
        for variable, path in env.items():
            if variable.endswith("_FILE"):
                assert path.startswith("/run/secrets/"), (name, variable)
                assert path.removeprefix("/run/secrets/") in mounted, (name, variable)
    # Who needs what: the projector its ClickHouse passwords and the admin key's hash.
    projector = SERVICES["projector"]["environment"]
    for variable in (
        "TRIBUTARY_ADMIN_KEY_SHA256_FILE",
        "TRIBUTARY_CLICKHOUSE_PASSWORD_FILE",
        "TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD_FILE",
    ):
        assert variable in projector, variable
    assert SERVICES["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD_FILE"] == (
        "/run/secrets/clickhouse-password"
    )


def test_healthchecks_use_our_health_endpoints() -> None:
    for name in (*GATEWAYS, *WORKERS, "projector"):
        assert "/healthz/ready" in " ".join(SERVICES[name]["healthcheck"]["test"]), name


def test_a_projector_bound_beyond_loopback_carries_the_admin_credential() -> None:
    env = RAW["services"]["projector"]["environment"]
    assert env["TRIBUTARY_PROJECTOR_HOST"] == "0.0.0.0"
    # Compose refuses to start without the secret files, as the projector would.
    for name in ("TRIBUTARY_ADMIN_KEY_SHA256_FILE", "TRIBUTARY_CLICKHOUSE_ANALYST_PASSWORD_FILE"):
        assert env[name].startswith("/run/secrets/"), name
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

    clickhouse = RAW["services"]["clickhouse"]
    assert (
        clickhouse["environment"]["CLICKHOUSE_PASSWORD_FILE"] == "/run/secrets/clickhouse-password"
    )
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


def test_every_image_but_clickhouse_is_one_we_build() -> None:
    ours = {image.tag for image in IMAGES}
    for name, service in SERVICES.items():
        if name != "clickhouse":
            assert service["image"] in ours, name
            assert "build" not in service, name  # built by `tributary images build`


def test_the_local_override_swaps_only_clickhouse_and_the_engine() -> None:
    local = yaml.safe_load((ROOT / "infra" / "compose" / "local.yml").read_text())
    assert set(local["services"]) == {"clickhouse", "docker", "projector", *WORKERS}
    assert local["services"]["projector"]["environment"] == {"TRIBUTARY_CLICKHOUSE_URL": ""}
    for name in WORKERS:
        assert set(local["services"][name]) == {"environment", "volumes"}
