"""The GPU pool's slots in real Redis: shared by every holder, leased, tiered, fail-closed."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from infra.local.process import free_port
from streams.jobs.runners.gpu_pool import GpuPool, PoolFull
from tests.conftest import make_settings
from tributary import redis_client
from tributary.settings import Settings

pytestmark = pytest.mark.integration


async def test_two_workers_never_hold_more_than_the_slots(redis_settings: Settings) -> None:
    ns = make_settings().namespace
    clients = [redis_client.connect(redis_settings) for _ in range(2)]
    # Two "workers", each its own client and pool object, sharing pool "p".
    for client in clients:
        await redis_client.initialize(client)  # as every process does at its start
    pools = [GpuPool(c, ns, "p", slots=2, poll_s=0.01) for c in clients]
    held = peak = 0

    async def attempt(pool: GpuPool) -> None:
        nonlocal held, peak
        async with pool.slot(lease_ms=10_000):
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0.05)
            held -= 1

    try:
        await asyncio.gather(*(attempt(pools[i % 2]) for i in range(12)))
        assert peak == 2
        assert await pools[0].in_flight() == 0
    finally:
        for client in clients:
            await client.aclose()


async def test_a_crashed_holder_frees_its_slot_when_the_lease_ends(
    redis_settings: Settings,
) -> None:
    client = redis_client.connect(redis_settings)
    pool = GpuPool(client, make_settings().namespace, "p", slots=1, poll_s=0.01)
    loop = asyncio.get_running_loop()
    try:
        leased_at = loop.time()  # before the lease is taken: its end is later than +1 s
        assert await pool.try_acquire("crashed-worker", lease_ms=1000)  # never released
        with pytest.raises(PoolFull):
            async with pool.slot(lease_ms=1000, wait_s=0.1):
                pass
        # Taken within the wait (else PoolFull), and only once the crashed lease ran out.
        async with pool.slot(lease_ms=1000, wait_s=5):
            taken_after = loop.time() - leased_at
        assert taken_after >= 1.0 - 0.02  # Redis's clock and ours: same host, ms rounding
    finally:
        await client.aclose()


async def test_a_lower_limit_leaves_slots_for_the_higher_tier(redis_settings: Settings) -> None:
    client = redis_client.connect(redis_settings)
    pool = GpuPool(client, make_settings().namespace, "p", slots=3)
    try:
        assert await pool.try_acquire("n1", 10_000, limit=2)
        assert await pool.try_acquire("n2", 10_000, limit=2)
        assert not await pool.try_acquire("n3", 10_000, limit=2)  # normal: 2 of 3 at most
        assert await pool.try_acquire("h1", 10_000)  # high: the reserved one
        assert not await pool.try_acquire("h2", 10_000)
        await pool.release("n1")
        assert await pool.try_acquire("h2", 10_000)
    finally:
        await client.aclose()


async def test_redis_down_means_waiting_never_running_unlimited() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    pool = GpuPool(client, "nowhere", "p", slots=4, poll_s=0.05)
    try:
        with pytest.raises(PoolFull):
            async with pool.slot(lease_ms=1000, wait_s=1.0):
                pytest.fail("ran without a slot")
    finally:
        await client.aclose()
