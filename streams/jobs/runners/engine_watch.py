"""The Docker engine's side of the containers, reported on `commands` for the command agent.

Two readers of the engine, both only reporting (the command agent decides, in each
user's order: `streams/jobs/container_rules.py`):
- the watch follows the engine's event stream: a container of ours that dies (its
  exit code, and whether the kernel killed it for memory) or is removed becomes a
  `container.gone` record, within a moment of the event;
- the reconcile lists our containers every `reconcile_interval_s` and reports each
  user's (`containers.observed`: running or not, exit code, age, how long idle, its
  limits), so what the watch missed (it was down, the engine restarted) is caught, orphans
  are found, and lifetime and idle limits are applied. A user whose containers all
  vanished from the engine gets an empty report, so records of them are closed too.

At-least-once: every worker runs one, and a report sent twice decides nothing twice (a
gone report's id derives from the container; a second view of the same engine finds the
record already changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from docker.errors import DockerException, NotFound
from requests.exceptions import RequestException

from schemas.envelope import CloudEvent, to_kafka
from schemas.jobs import (
    CONTAINER_GONE,
    CONTAINERS_OBSERVED,
    LABEL_CONTAINER,
    LABEL_IDLE,
    LABEL_LIFETIME,
    LABEL_USER,
    ContainerGone,
    ContainersObserved,
    ObservedContainer,
)
from schemas.topics import COMMANDS
from streams.events.sequencing import derived_id
from streams.jobs.container_rules import exit_reason
from streams.jobs.runners.docker_runner import DockerRunner
from streams.jobs.runners.errors import RunnerError
from tributary.pause import Pause
from tributary.settings import Settings

log = structlog.get_logger(__name__)

SOURCE = "tributary/engine"
NOT_ENDED = ("created", "restarting", "paused")
IDLE_CPU_NS = 5_000_000  # less CPU than this (5 ms) between two sweeps counts as idle


def now_ms() -> int:
    return int(time.time() * 1000)


class EngineWatch:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.topic = COMMANDS.physical(settings.namespace)
        self._producer = producer
        self._engine = DockerRunner(settings.docker_dsn, settings.namespace)
        self._busy: dict[str, tuple[int, int]] = {}  # container -> (cpu ns, idle since ms)
        self._users: set[str] = set()  # users with containers at the last sweep

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._watch(stop), self._reconcile(stop))

    # -- the event stream ----------------------------------------------------------------

    async def _watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        since: int | None = None
        while not stop.is_set():
            try:
                stream = await asyncio.to_thread(self._engine.events, since)
            except (RunnerError, DockerException, RequestException) as exc:
                log.info("engine events unavailable; retrying", error=str(exc))
                await _sleep_unless(stop, 2.0)
                continue
            reader = threading.Thread(
                target=_pump, args=(stream, queue, loop), name="engine-events", daemon=True
            )
            reader.start()
            try:
                while not stop.is_set():
                    item = await _get_unless(stop, queue)
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        log.info("engine event stream ended; reconnecting", error=repr(item))
                        break
                    since = int(item.get("time", time.time()))
                    await self._on_event(item)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
            await _sleep_unless(stop, 0.5)

    async def _on_event(self, event: dict[str, Any]) -> None:
        action = event.get("Action") or event.get("status")
        attributes = event.get("Actor", {}).get("Attributes", {})
        user = attributes.get(LABEL_USER)
        container_id = attributes.get(LABEL_CONTAINER)
        if not user or not container_id or action not in ("die", "destroy"):
            return  # `oom` is followed by `die`, which says it
        if action == "destroy":
            gone = ContainerGone(container_id=container_id, reason="removed", at_ms=now_ms())
        else:
            exit_code = int(attributes.get("exitCode", 0))
            oom = await asyncio.to_thread(self._oom_killed, event.get("id", ""))
            reason = exit_reason(exit_code, oom)
            gone = ContainerGone(
                container_id=container_id, reason=reason, exit_code=exit_code, at_ms=now_ms()
            )
        # One id per container: a die and the destroy after it are one report.
        await self._send(derived_id(container_id, "gone"), CONTAINER_GONE, user, gone)

    def _oom_killed(self, engine_id: str) -> bool:
        try:
            state = self._engine._docker().containers.get(engine_id).attrs.get("State", {})
        except (NotFound, DockerException, RequestException):
            return False
        return bool(state.get("OOMKilled"))

    # -- the sweep -----------------------------------------------------------------------

    async def _reconcile(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep_unless(stop, self.settings.reconcile_interval_s)
            if stop.is_set():
                return
            # The view's time is when the listing began: a container started while the
            # sweep ran (its stats take a while with many containers) is not in it, and
            # must not look vanished.
            at = now_ms()
            try:
                found = await asyncio.to_thread(self._observe)
            except (RunnerError, DockerException, RequestException) as exc:
                log.info("engine unavailable for reconcile", error=str(exc))
                continue
            for user in self._users - set(found):
                found[user] = []  # none left on the engine: their records are checked too
            self._users = {user for user, seen in found.items() if seen}
            for user, containers in found.items():
                observed = ContainersObserved(containers=containers, at_ms=at)
                event_id = derived_id(user, f"observed:{at}")
                await self._send(event_id, CONTAINERS_OBSERVED, user, observed)

    def _observe(self) -> dict[str, list[ObservedContainer]]:
        now = now_ms()
        found: dict[str, list[ObservedContainer]] = {}
        seen: set[str] = set()
        for container in self._engine.ours():
            attrs = container.attrs
            labels = attrs.get("Config", {}).get("Labels", {}) or {}
            user, container_id = labels.get(LABEL_USER), labels.get(LABEL_CONTAINER)
            if not user or not container_id:
                continue
            state = attrs.get("State", {})
            # A container made but not started yet (a start under way) has not ended.
            running = bool(state.get("Running")) or state.get("Status") in NOT_ENDED
            idle_ms = self._idle_ms(container, now) if running else 0
            seen.add(container.id)
            found.setdefault(user, []).append(
                ObservedContainer(
                    container_id=container_id,
                    running=running,
                    exit_code=None if running else state.get("ExitCode"),
                    oom_killed=bool(state.get("OOMKilled")),
                    created_ms=_ms(
                        state.get("StartedAt")
                        if not str(state.get("StartedAt", "")).startswith("0001-")
                        else attrs.get("Created")
                    ),
                    idle_ms=idle_ms,
                    max_lifetime_s=_int(labels.get(LABEL_LIFETIME)),
                    idle_timeout_s=_int(labels.get(LABEL_IDLE)),
                )
            )
        for engine_id in set(self._busy) - seen:
            del self._busy[engine_id]
        return found

    def _idle_ms(self, container: Any, now: int) -> int:
        """How long the container has used (almost) no CPU, from one sample per sweep."""
        try:
            stats = container.stats(stream=False, one_shot=True)
            cpu = int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
        except (DockerException, RequestException, KeyError, TypeError, ValueError):
            return 0
        last = self._busy.get(container.id)
        if last is None or cpu - last[0] >= IDLE_CPU_NS:
            self._busy[container.id] = (cpu, now)
            return 0
        self._busy[container.id] = (cpu, last[1])
        return now - last[1]

    # -- records -------------------------------------------------------------------------

    async def _send(self, event_id: str, event_type: str, user: str, data: Any) -> None:
        event = CloudEvent(
            id=event_id,
            source=SOURCE,
            type=event_type,
            subject=user,
            data=data.model_dump(mode="json", exclude_none=True),
        )
        key, value, headers = to_kafka(event)
        pause = Pause()
        while True:
            try:
                await self._producer.send_and_wait(
                    self.topic, value, key=key, headers=list(headers)
                )
                return
            except Exception as exc:  # Kafka down: the report waits, never dropped
                log.warning("engine report not written; retrying", error=repr(exc))
                await pause.wait()


def _pump(stream: Any, queue: asyncio.Queue[Any], loop: asyncio.AbstractEventLoop) -> None:
    """The blocking event stream, in a thread, into the loop's queue."""
    try:
        for event in stream:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        loop.call_soon_threadsafe(queue.put_nowait, EOFError("engine closed the stream"))
    except BaseException as exc:  # handed to the loop, which reconnects
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to tell
            loop.call_soon_threadsafe(queue.put_nowait, exc)


async def _get_unless(stop: asyncio.Event, queue: asyncio.Queue[Any]) -> Any:
    getter = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        stopping.cancel()
        return getter.result()
    getter.cancel()
    return None


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _ms(text: str | None) -> int:
    """Docker's RFC 3339 times (nanoseconds, `Z`) as epoch ms; now for a zero time."""
    if not text or text.startswith("0001-"):
        return now_ms()
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
