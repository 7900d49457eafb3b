"""The one place configuration is read. Every value comes from a `TRIBUTARY_*` env var."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from schemas.topics import MAX_RECORD_BYTES

# Credentials: each can also come from a file named by `TRIBUTARY_<FIELD>_FILE` (Docker and
# Kubernetes secrets, /run/secrets/...), read at start; a value set directly wins.
SECRETS = (
    "jwt_hs256_secret",
    "jwt_rs256_public_key",
    "admin_key",
    "admin_key_sha256",
    "dashboard_session_secret",
    "share_secret",
    "clickhouse_password",
    "clickhouse_analyst_password",
)


class SecretFiles(PydanticBaseSettingsSource):
    """`TRIBUTARY_<FIELD>_FILE=path` gives a secret field the file's content (trailing
    newline stripped). A file named but unreadable stops the process with its name."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"TRIBUTARY_{field_name.upper()}_FILE")
        if field_name not in SECRETS or not path:
            return None, field_name, False
        try:
            with open(path) as secret:
                return secret.read().rstrip("\r\n"), field_name, False
        except OSError as exc:
            raise ValueError(
                f"TRIBUTARY_{field_name.upper()}_FILE={path}: cannot read it ({exc.strerror})"
            ) from exc

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


class Settings(BaseSettings):
    """Configuration of every Tributary process; env vars are `TRIBUTARY_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Given values, then `TRIBUTARY_*` variables, then `TRIBUTARY_*_FILE` secrets."""
        return init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings

    # Where local services keep their data, logs and pid files.
    data_dir: Path = Path(".tributary")
    # Downloaded artifacts (Kafka jars) shared by every data dir on this machine.
    cache_dir: Path = Path.home() / ".cache" / "tributary"

    # Namespace prefixes topic names, consumer groups and the Faust app id, so that
    # several stacks (a demo, a test session) can share one broker without touching.
    namespace: str = Field(default="tributary", pattern=r"^[a-z][a-z0-9-]{0,40}$")

    kafka_version: str = "4.1.1"
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    # Local KRaft nodes (`tributary up --brokers 3`), each a controller and a broker: node n
    # (1-based) on kafka_port + 2(n-1) and kafka_controller_port + 2(n-1). Three make a
    # quorum that outlives one loss; topics then get 3 replicas and min.insync.replicas=2.
    kafka_brokers: int = Field(default=1, ge=1, le=5)
    # A cluster started elsewhere (compose, Kubernetes): its bootstrap list, `host:port,...`.
    kafka_bootstrap_servers: str | None = None
    # Replicas per topic; default min(3, brokers listed), with min.insync.replicas=2 at 3.
    kafka_replication_factor: int | None = Field(default=None, ge=1)
    partitions: int = Field(default=6, ge=1)

    redis_port: int = 6379
    redis_url: str | None = None
    # The Redis named is a node of a Redis Cluster: the cluster client finds the others.
    # Locally (`TRIBUTARY_REDIS_CLUSTER=true tributary up`): three masters on redis_port,
    # +1, +2.
    redis_cluster: bool = False
    # Connect and per-command socket timeout.
    redis_timeout_s: float = Field(default=2.0, gt=1.0)
    # Connections a process's client opens at most (a single Redis; callers beyond wait for
    # one, up to `redis_timeout_s`). The cluster client is not bounded (it would refuse).
    redis_max_connections: int = Field(default=32, ge=2, le=10_000)

    # Unset: embedded chDB under data_dir. Set (http://host:8123): a ClickHouse server.
    clickhouse_url: str | None = None
    clickhouse_database: str = Field(default="tributary", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,60}$")
    # A ClickHouse cluster (its name in the servers' remote_servers): tables are made
    # `ON CLUSTER` as Replicated*MergeTree shards behind Distributed tables, and several
    # projectors split the partitions (docs/operators.md). Unset: one server, or chDB.
    clickhouse_cluster: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,60}$")
    # With a server: the password of the read-only user analyst queries run as
    # (`tributary_analyst`, made by the projector at start; projections/migrations.py).
    clickhouse_analyst_password: str | None = None
    # The password of the ClickHouse server's user in `clickhouse_url` (instead of writing
    # it into the URL; from a file with TRIBUTARY_CLICKHOUSE_PASSWORD_FILE).
    clickhouse_password: str | None = None
    # chDB data folder; default `<data_dir>/chdb`. Only one process may open it.
    chdb_dir: Path | None = None

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # How many gateway and worker processes `tributary up` starts. With two gateways or
    # more, haproxy listens on `gateway_port` and gateway n on `gateway_port + n`.
    gateways: int = Field(default=1, ge=1, le=8)
    workers: int = Field(default=1, ge=1, le=12)
    gateway_workers: int = Field(default=1, ge=1)
    # uvicorn's WebSocket protocol: "websockets-sansio" holds a socket without tasks of its
    # own (bench/RESULTS.md, push: the memory per idle socket).
    gateway_ws: Literal["websockets", "websockets-sansio", "wsproto"] = "websockets-sansio"
    # permessage-deflate on WebSockets: less bandwidth, but zlib's state costs each socket
    # about 300 KiB once it sends (bench/RESULTS.md, push); off by default.
    gateway_ws_compression: bool = False
    # Serve the plain POST /v1/events in a lean ASGI layer (gateway/fast_events.py);
    # off: every request goes through the FastAPI route.
    gateway_fast_events: bool = True
    # Bodies up to this many bytes (413 above); records can be up to twice that.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_RECORD_BYTES // 2)
    produce_timeout_s: float = 5.0

    # Auth: API keys (hashed in Redis) and/or JWT bearer tokens. Off only for local dev.
    auth_enabled: bool = True
    # Seconds a gateway remembers a valid API key (0: ask Redis on every request).
    api_key_cache_s: float = Field(default=10.0, ge=0)
    jwt_hs256_secret: str | None = None
    jwt_rs256_public_key: str | None = None  # PEM text
    jwt_audience: str = "tributary"

    # Admission limits per user, several windows at once ("N/period", comma-separated).
    rate_limits: str = "10/s,100/m,1000/h"
    rate_limits_containers: str = "2/s,20/m,200/h"
    rate_limit_fail_open: bool = True
    rate_limit_containers_fail_open: bool = False
    idempotency_ttl_s: int = 24 * 60 * 60
    # On SIGTERM the gateway reports not ready and keeps serving this long before it stops
    # listening (gateway/drain.py); then up to 20 s for in-flight requests.
    shutdown_drain_s: float = Field(default=5.0, ge=0, le=10)
    max_batch_events: int = Field(default=1000, ge=1)
    ready_max_disk_used: float = 0.9
    # `/healthz/live` answers 503 above this resident memory (gateway and worker).
    live_max_rss_mb: int = Field(default=1024, ge=1)

    # WebSocket push (`WS /v1/ws`, docs/push.md). History: each user's stream keeps its last
    # `push_history_size` events and expires `push_history_ttl_s` after its last one; a
    # resume from further back is filled from ClickHouse, at most `push_fill_max_events`.
    push_history_size: int = Field(default=1000, ge=10)
    push_history_ttl_s: int = Field(default=24 * 60 * 60, ge=60)
    push_fill_max_events: int = Field(default=10_000, ge=0)
    push_fill_timeout_s: float = Field(default=5.0, gt=0)
    # Keepalive: a ping every interval; no pong within the timeout closes the socket.
    push_ping_interval_s: float = Field(default=20.0, gt=0)
    push_ping_timeout_s: float = Field(default=20.0, gt=0)
    # Bytes queued for one socket past which the client is too slow: closed with 4008.
    push_send_buffer_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Seconds a socket without a credential in its URL or headers has to send one.
    push_auth_timeout_s: float = Field(default=5.0, gt=0)
    # Redis commands the push reader runs at once (its connections, whatever the clients).
    push_redis_concurrency: int = Field(default=8, ge=1, le=64)

    projector_host: str = "127.0.0.1"
    projector_port: int = 8124
    # The projector's query and replay API answers only an admin key (docs/operators.md).
    # Servers accept the keys whose SHA-256 is listed here (comma-separated hex); with none
    # listed, a projector on loopback makes one in `<data_dir>/admin.key`, and one bound
    # wider refuses to start. Clients (the CLI, the demo) send `admin_key`, or that file's.
    admin_key_sha256: str = ""
    admin_key: str | None = None

    # Analyst queries (`POST /query`): ClickHouse's own limits, and how many run at once.
    # One query on one thread leaves the other core to ingestion on a 2-core machine.
    query_max_execution_s: float = Field(default=10.0, gt=0, le=600)
    query_max_memory_mb: int = Field(default=1024, ge=16)
    query_max_result_rows: int = Field(default=100_000, ge=1)
    query_max_result_mb: int = Field(default=64, ge=1)
    query_max_threads: int = Field(default=1, ge=1)
    query_concurrency: int = Field(default=1, ge=1)

    # Limits at the HTTP edge of the gateway and the projector (tributary/http_edge.py):
    # 431 past these header totals, 414 past this URL, 408 for a request (headers and
    # body) not received in full within `http_request_timeout_s` of its first byte.
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    http_max_headers: int = Field(default=100, ge=8)
    http_max_url_bytes: int = Field(default=8 * 1024, ge=256)
    http_request_timeout_s: float = Field(default=10.0, gt=0)
    projector_batch_rows: int = 50_000
    projector_batch_ms: int = 1_000
    # The projector's `/healthz/live` limit: embedded chDB runs ClickHouse in its process.
    projector_live_max_rss_mb: int = Field(default=4096, ge=1)

    worker_name: str = Field(default="worker-1", pattern=r"^[a-z0-9-]{1,40}$")
    # Standby copies of other workers' table partitions. 0 by default: with exactly_once,
    # faust-streaming 0.15.3 crashed here promoting a standby on rebalance (ConsistencyError,
    # "persisted offset higher than highwater -1", cf. faust issue #658).
    table_standby_replicas: int = Field(default=0, ge=0)
    # The circuit breakers (tributary/breakers.py): after this many consecutive failures
    # of Docker, Triton or ClickHouse, callers park instead of failing, and after
    # `breaker_open_s` one of them probes it (the longest a healed dependency waits).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=10.0, gt=0)
    # How long a job attempt waits for Docker or Triton while it cannot reach them (a
    # restart), parked or not, before the attempt is spent (0: at once).
    job_unreachable_wait_s: float = Field(default=60.0, ge=0)
    # A dead worker's partitions move to the others after this many seconds.
    worker_session_timeout_s: float = 10.0
    # Where the deciding agents' tables keep their committed entries
    # (streams/runtime/stores.py): `rocksdb` (on disk under `state_dir`, default
    # `<data_dir>/state`, with `state_memory_mib` of cache and write buffers per agent;
    # 10 M keys restored in 131 MiB) or `memory` (a dict per table: ~10 % faster, and about
    # 500 MiB per million users). Either is restored from the changelog on assignment.
    state_backend: Literal["memory", "rocksdb"] = "rocksdb"
    state_dir: Path | None = None
    state_memory_mib: int = Field(default=64, ge=4)
    # An event id seen again within this horizon (by event time) has no second effect.
    dedup_ttl_s: int = 24 * 60 * 60
    worker_web_port: int = 6066
    # Where the worker's health and metrics pages listen: loopback here; 0.0.0.0 in a pod,
    # so that its probes reach them (infra/k8s, docker-compose.yml).
    worker_web_host: str = "127.0.0.1"

    # The admin dashboard (`tributary dashboard`, dashboard/): its address; the admin
    # credential logs in once, then a signed session cookie lasts this long. The cookie's
    # key: unset, a random one per process (sessions end when it restarts). Secure cookie:
    # set it where the dashboard is served over HTTPS.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8090
    dashboard_session_secret: str | None = None
    dashboard_session_hours: int = Field(default=8, ge=1, le=24 * 7)
    dashboard_secure_cookie: bool = False

    # OpenTelemetry: where every process sends its spans (OTLP/HTTP, e.g. Jaeger's
    # http://127.0.0.1:4318; `tributary up --tracing` starts one). Unset: tracing is off.
    otlp_endpoint: str | None = None

    # A consumer with lag whose position has not moved for this long is reported stalled.
    stall_after_s: float = Field(default=60.0, gt=0)
    # A loop (retry scheduler, push, status, the projector's) that has not gone round for
    # this long is stuck: `/healthz/live` answers 503 so that the process is restarted.
    loop_stuck_after_s: float = Field(default=60.0, gt=0)

    # Jobs (the command agent's limits are authoritative and evaluated in event time).
    command_rate_limits: str = "20/s,200/m,2000/h"
    max_in_flight_jobs: int = Field(default=16, ge=1)
    max_running_containers: int = Field(default=4, ge=1)
    retry_base_ms: int = Field(default=2000, ge=1)
    retry_cap_ms: int = Field(default=300_000, ge=1)
    # Attempts one executor tier runs at once (in this worker); past it, its work topic waits.
    executor_concurrency: int = Field(default=64, ge=1, le=1024)
    # Containers: stopped this long after they started, or after this long without using
    # CPU, unless the request says otherwise; the engine is reconciled against the command
    # agent's table this often, and a container no record owns is removed after the grace.
    container_max_lifetime_s: int = Field(default=24 * 60 * 60, ge=1)
    container_idle_s: int = Field(default=60 * 60, ge=1)
    reconcile_interval_s: float = Field(default=15.0, gt=0)
    orphan_grace_s: float = Field(default=60.0, ge=0)
    container_logs_max_lines: int = Field(default=1000, ge=1)
    # Desktops (gateway/routes/desktops.py): the key that signs view-only share links (the
    # same on every gateway; unset: a file in the data folder), how long a link lives, and
    # each viewer's relay limits.
    share_secret: str | None = None
    share_ttl_s: int = Field(default=3600, ge=10, le=7 * 86_400)
    desktop_viewer_bytes_per_s: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    desktop_idle_s: float = Field(default=600.0, gt=0)

    # Docker engine for containers (`tributary up` starts one with its own socket when root).
    docker_host: str | None = None
    docker_base_image: str = "tributary/busybox:local"

    # Triton (HTTP) for inference. Every worker naming the same pool shares its slots: at
    # most `gpu_pool_slots` inference attempts run on it at once, across all workers.
    triton_url: str = "127.0.0.1:8000"
    gpu_pool: str = "default"
    gpu_pool_slots: int = Field(default=64, ge=1)
    # Slots normal-priority jobs leave free, so a high one never queues behind a backlog.
    gpu_pool_high_reserved: int = Field(default=1, ge=0)
    # Cross-user batching: texts arriving within the window (or until the batch is full)
    # go to Triton as one request; a job's texts are split into pieces (its progress steps).
    inference_batch_window_ms: float = Field(default=5.0, ge=0)
    inference_max_batch: int = Field(default=64, ge=1)
    inference_piece: int = Field(default=16, ge=1)
    inference_requests_in_flight: int = Field(default=4, ge=1)
    # Triton's own dynamic batching (`tributary up` starts Triton with it): requests queued
    # within this many microseconds run as one model execution; 0: those already waiting;
    # -1: off.
    triton_queue_delay_us: int = Field(default=0, ge=-1)

    log_level: str = "INFO"

    @property
    def kafka_hosts(self) -> list[str]:
        """Every broker's `host:port`: the bootstrap list every client takes."""
        if self.kafka_bootstrap_servers:
            return [h.strip() for h in self.kafka_bootstrap_servers.split(",") if h.strip()]
        return [f"{self.kafka_host}:{self.kafka_port + 2 * n}" for n in range(self.kafka_brokers)]

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(self.kafka_hosts)

    @property
    def replication_factor(self) -> int:
        return self.kafka_replication_factor or min(3, len(self.kafka_hosts))

    @property
    def min_insync_replicas(self) -> int:
        """Writes (acks=all) need this many replicas in sync: 2 of 3, so one may be lost;
        1 below 3 (2 of 2 would stop every write when either broker is down)."""
        return 2 if self.replication_factor >= 3 else 1

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def state_path(self) -> Path:
        return (self.state_dir or self.data_dir / "state").resolve()

    @property
    def chdb_path(self) -> Path:
        return (self.chdb_dir or self.data_dir / "chdb").resolve()

    @property
    def docker_dsn(self) -> str:
        return self.docker_host or f"unix://{(self.data_dir / 'docker' / 'docker.sock').resolve()}"

    @property
    def projector_url(self) -> str:
        return f"http://{self.projector_host}:{self.projector_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"

    @property
    def worker_url(self) -> str:
        """The worker's health and metrics pages."""
        return f"http://{self.worker_web_host}:{self.worker_web_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
