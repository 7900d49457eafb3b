"""The integration tests on containers: Kafka and Redis from our own images, via testcontainers.

Runs the end-to-end module in a pytest of its own with `TRIBUTARY_TEST_SERVICES=containers`
(tests/containers.py): its own ports, data folder and Docker engine, so this session's
local services are not touched. Every test of that module must pass on the containers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PORT_OFFSET, ROOT, TEST_DATA

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)
def test_the_end_to_end_tests_pass_on_kafka_and_redis_containers() -> None:
    data = TEST_DATA / "containers"
    env = {
        **os.environ,
        "TRIBUTARY_TEST_SERVICES": "containers",
        "TRIBUTARY_TEST_PORT_OFFSET": str(PORT_OFFSET + 300),
        "TRIBUTARY_TEST_DATA_DIR": str(data),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s"]
    done = subprocess.run(
        [*command, "tests/integration/test_end_to_end.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    assert "kafka, redis in containers" in done.stdout, tail
    summary = re.search(r"(\d+) passed(.*) in ", done.stdout.splitlines()[-1])
    assert summary is not None and int(summary[1]) >= 8, tail
    assert "failed" not in summary[2] and "error" not in summary[2], tail
