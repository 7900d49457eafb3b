"""Inference batched across users: three users' jobs that arrive together are answered
from one Triton request (counted by Triton itself, `v2/models/minilm/stats`), and each
job gets its own rows of the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cli.demo import api_keys
from infra.local import stack, triton
from streams.jobs.runners.triton_runner import TritonRunner
from tests.conftest import PORT_OFFSET
from tests.integration.test_jobs import call, wait_for_job
from tributary.settings import Settings

pytestmark = pytest.mark.integration

TRITON = f"127.0.0.1:{18000 + PORT_OFFSET}"


@pytest.fixture(scope="module")
def batching_stack(services: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    from infra.local.process import free_port

    settings = services.model_copy(
        update={
            "gateway_port": free_port(),
            "projector_port": free_port(),
            "worker_web_port": free_port(),
            "triton_url": TRITON,
            # Wide enough that three POSTs made at once meet in one batch on a busy machine.
            "inference_batch_window_ms": 400.0,
        }
    )
    try:
        print(triton.start(settings))
        for app in stack.APPS:
            print(stack.start_app(settings, app))
        yield settings, asyncio.run(api_keys(settings, ["ann", "ben", "cat"]))
    finally:
        for app in reversed(stack.APPS):
            stack.managed(settings, app).stop(timeout_s=40)
        triton.stop(settings)


async def requests_and_direct(
    settings: Settings, texts: list[str]
) -> tuple[int, list[list[float]]]:
    runner = TritonRunner(settings.triton_url)
    try:
        stats = (await runner.stats("minilm"))["model_stats"][0]
        expected = await runner.infer("minilm", texts) if texts else []
    finally:
        await runner.close()
    return int(stats["inference_stats"]["success"]["count"]), expected


def test_three_users_jobs_are_answered_from_one_triton_request(
    batching_stack: tuple[Settings, dict[str, str]],
) -> None:
    settings, keys = batching_stack
    inputs = {"ann": ["a first text"], "ben": ["b one", "b two"], "cat": ["c 1", "c 2", "c 3"]}
    # Warm the path (first connections, first model call), then count from here.
    warm = call(settings, keys["ann"], "POST", "/v1/inference", json={"inputs": ["warm"]})
    wait_for_job(settings, keys["ann"], warm.json()["job_id"], {"completed"}, 60)
    before, _ = asyncio.run(requests_and_direct(settings, []))

    def post(user: str) -> str:
        body = {"inputs": inputs[user]}
        return str(call(settings, keys[user], "POST", "/v1/inference", json=body).json()["job_id"])

    with ThreadPoolExecutor(3) as pool:
        ids = dict(zip(inputs, pool.map(post, inputs), strict=True))
    results = {
        user: wait_for_job(settings, keys[user], job_id, {"completed"}, 60)["result"]
        for user, job_id in ids.items()
    }
    after, _ = asyncio.run(requests_and_direct(settings, []))
    assert after - before == 1, f"{after - before} Triton requests for three jobs"
    for user, texts in inputs.items():
        _, expected = asyncio.run(requests_and_direct(settings, texts))
        got = np.array(results[user]["embeddings"])
        assert got.shape == (len(texts), 384)
        np.testing.assert_allclose(got, np.array(expected), atol=1e-4)
