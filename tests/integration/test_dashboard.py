"""The admin dashboard in a real browser (headless Chromium, selenium) on a real stack:
log in with the admin key, retry a dead letter and see it leave the list, follow a job that
was dead-lettered through its timeline, read lag per group and partition, see the charts.

Set TRIBUTARY_SCREENSHOTS_DIR to keep the pages' screenshots there (the README's come from
`TRIBUTARY_SCREENSHOTS_DIR=docs/images pytest tests/integration/test_dashboard.py`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.demo import api_keys
from infra.local import kafka, stack
from infra.local.process import free_port
from schemas.envelope import header_value
from schemas.topics import INGEST
from streams import dlq_admin
from tests.conftest import make_settings
from tests.integration.browser import browser
from tests.integration.test_dlq import produce_bad
from tests.integration.test_jobs import call, wait_for_job
from tributary import admin
from tributary.kafka_clients import partitions
from tributary.settings import Settings

pytestmark = pytest.mark.integration

EVENTS = 5


@pytest.fixture(scope="module")
def dashboard_stack(services: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A namespace of its own (its DLQ and groups hold only this module's records); the
    projector, a worker, a gateway and the dashboard. Triton's address answers nothing, so
    inference attempts fail and their job ends dead-lettered."""
    settings = make_settings(
        triton_url=f"127.0.0.1:{free_port()}",
        retry_base_ms=200,
        retry_cap_ms=1000,
        job_unreachable_wait_s=0,  # each attempt spent at once, not after a wait
    )
    kafka.ensure_topics(settings)
    apps = [*stack.APPS, stack.DASHBOARD]
    try:
        for app in apps:
            print(stack.start_app(settings, app))
        keys = asyncio.run(api_keys(settings, ["dana"]))
        yield settings, keys
    finally:
        for app in reversed(apps):
            stack.managed(settings, app).stop(timeout_s=40)


@pytest.fixture(scope="module")
def driver(dashboard_stack: tuple[Settings, dict[str, str]]) -> Iterator[Any]:
    """A browser logged in to the dashboard (through the login page, with the admin key)."""
    from selenium.webdriver.common.by import By

    settings, _ = dashboard_stack
    chrome = browser(1400, 1300)
    try:
        chrome.get(f"{settings.dashboard_url}/lag")
        assert "/login" in chrome.current_url  # never open
        chrome.find_element(By.ID, "key").send_keys(admin.new_key())
        navigate(chrome, chrome.find_element(By.CSS_SELECTOR, "#login button"))
        assert chrome.find_element(By.ID, "login-failed").is_displayed()
        chrome.find_element(By.ID, "key").send_keys(admin.ensure_local_key(settings))
        navigate(chrome, chrome.find_element(By.CSS_SELECTOR, "#login button"))
        assert chrome.current_url.endswith("/lag")  # where it was going
        yield chrome
    finally:
        chrome.quit()


def navigate(chrome: Any, element: Any) -> None:
    """Click `element` and wait until the page it leads to has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    old = chrome.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(chrome, 30).until(expected_conditions.staleness_of(old))


def screenshot(chrome: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("TRIBUTARY_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert chrome.save_screenshot(str(folder / f"dashboard-{name}.png"))


def until(check: Callable[[], Any], what: str, timeout_s: float = 60, page: Any = None) -> Any:
    """`check()` once it is truthy; failing after `timeout_s`, with the page's text."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        seen = page.find_element("tag name", "body").text[:3000] if page is not None else ""
        assert time.monotonic() < deadline, f"never: {what}\n{seen}"
        time.sleep(0.5)


def listed(chrome: Any, url: str) -> list[str]:
    from selenium.webdriver.common.by import By

    chrome.get(url)
    rows = chrome.find_elements(By.CSS_SELECTOR, "#letters tr[data-position]")
    return [row.get_attribute("data-position") for row in rows]


def test_retrying_a_dead_letter_takes_it_off_the_list(
    dashboard_stack: tuple[Settings, dict[str, str]], driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    settings, _ = dashboard_stack
    asyncio.run(produce_bad(settings))  # no subject: the counter dead-letters it
    first = until(lambda: listed(driver, f"{settings.dashboard_url}/dlq"), "a letter listed")
    assert len(first) == 1
    position = first[0]
    screenshot(driver, "dlq", tmp_path)

    # Its page shows why it is there.
    navigate(driver, driver.find_element(By.LINK_TEXT, position))
    assert driver.find_element(By.ID, "letter-reason").text == "invalid_envelope"
    assert '"n": 1' in driver.find_element(By.ID, "value").text

    driver.get(f"{settings.dashboard_url}/dlq?reason=invalid_envelope")
    row = driver.find_element(By.CSS_SELECTOR, f'#letters tr[data-position="{position}"]')
    navigate(driver, row.find_element(By.CSS_SELECTOR, "button.retry"))
    assert driver.find_element(By.ID, "done").text == "retried 1 of 1"
    assert position not in listed(driver, driver.current_url)
    # It went back to its origin, marked; still unfixable, it is dead-lettered anew there.
    letters = until(
        lambda: [d for d in asyncio.run(dlq_admin.read(settings)) if d.position != position],
        "the retried record dead-lettered again",
    )
    assert header_value(letters[0].headers, "x-tributary-retried-from") == f"dlq:{position}"
    assert letters[0].info is not None
    assert letters[0].info.origin.topic == INGEST.physical(settings.namespace)
    again = until(lambda: listed(driver, f"{settings.dashboard_url}/dlq"), "the new letter")
    assert again == [letters[0].position]
    shown = listed(driver, f"{settings.dashboard_url}/dlq?retried=1")
    assert sorted(shown) == sorted([position, letters[0].position])

    # Retry all with a reason: every letter of it leaves the list.
    asyncio.run(produce_bad(settings))
    pending = until(
        lambda: (
            (found := listed(driver, f"{settings.dashboard_url}/dlq")) and len(found) == 2 and found
        ),
        "a second letter listed",
    )
    driver.get(f"{settings.dashboard_url}/dlq?reason=invalid_envelope")
    navigate(driver, driver.find_element(By.ID, "retry-all"))
    assert driver.find_element(By.ID, "done").text == "retried 2 of 2"
    # Gone from the list (their copies, dead-lettered again, come back under new positions).
    assert not set(pending) & set(listed(driver, driver.current_url))
    until(lambda: len(asyncio.run(dlq_admin.read(settings))) == 5 or None, "both again")

    # A purge wants its word typed; then the topic is empty.
    driver.get(f"{settings.dashboard_url}/dlq")
    navigate(driver, driver.find_element(By.CSS_SELECTOR, "#purge button"))
    assert "Nothing purged" in driver.find_element(By.ID, "problem").text
    assert len(asyncio.run(dlq_admin.read(settings))) == 5
    driver.get(f"{settings.dashboard_url}/dlq")
    driver.find_element(By.ID, "purge-confirm").send_keys("purge")
    navigate(driver, driver.find_element(By.CSS_SELECTOR, "#purge button"))
    assert driver.find_element(By.ID, "done").text == "purged 5 dead letters"
    assert asyncio.run(dlq_admin.read(settings)) == []


def test_a_jobs_timeline_from_its_user_page(
    dashboard_stack: tuple[Settings, dict[str, str]], driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    settings, keys = dashboard_stack
    answer = call(
        settings, keys["dana"], "POST", "/v1/inference", json={"inputs": ["hi"], "max_attempts": 2}
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    wait_for_job(settings, keys["dana"], job_id, {"dead_lettered"})

    def job_link() -> Any:
        driver.get(f"{settings.dashboard_url}/")
        driver.find_element(By.ID, "user-search").send_keys("dana")
        search = driver.find_element(By.CSS_SELECTOR, "header form[action='/users'] button")
        navigate(driver, search)
        states = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#jobs td.state")]
        links = driver.find_elements(By.LINK_TEXT, job_id)
        return links[0] if links and states == ["dead_lettered"] else None

    navigate(driver, until(job_link, "the job on its user's page", page=driver))

    def steps() -> list[tuple[str, str]] | None:
        """The timeline's (state, line) once its last step is there; else None, reloaded."""
        items = driver.find_elements(By.CSS_SELECTOR, "#timeline li.step")
        found = [(i.find_element(By.CLASS_NAME, "state").text, i.text) for i in items]
        if found and found[-1][0] == "dead_lettered":
            return found
        driver.refresh()
        return None

    timeline = until(steps, "the whole timeline", page=driver)
    states = [state for state, _ in timeline]
    # Two attempts, each started and failed, a retry between, then the dead letter.
    assert states[0] == "queued" and states[-1] == "dead_lettered", timeline
    assert states.count("active") == 2 and states.count("failed") == 2, timeline
    assert "retrying" in states, timeline
    assert driver.find_element(By.ID, "job-state").text == "dead_lettered"
    screenshot(driver, "job", tmp_path)


def test_lag_per_group_and_partition_and_the_overview(
    dashboard_stack: tuple[Settings, dict[str, str]], driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    settings, keys = dashboard_stack
    for n in range(EVENTS):
        answer = httpx.post(
            f"{settings.gateway_url}/v1/events",
            json={"type": "page.view", "source": "tests", "data": {"n": n}},
            headers={"Authorization": f"Bearer {keys['dana']}"},
        )
        assert answer.status_code == 202, answer.text
    counter = f"{settings.namespace}-streams-counter"
    ingest = INGEST.physical(settings.namespace)

    def counter_rows() -> list[list[str]] | None:
        driver.get(f"{settings.dashboard_url}/lag")
        table = driver.find_element(By.CSS_SELECTOR, f'table.lag[data-group="{counter}"]')
        rows = [
            [c.text for c in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.TAG_NAME, "tr")[1:]
        ]
        # Caught up: every event reached, the counter's lag 0 on every partition.
        done = sum(int(r[3]) for r in rows) >= EVENTS and all(r[4] == "0" for r in rows)
        return rows if done else None

    rows = until(counter_rows, "the counter caught up, as the lag page shows it", page=driver)
    assert {r[0] for r in rows} == {ingest}
    assert len(rows) == len(asyncio.run(partitions(settings.kafka_bootstrap, ingest)))
    # The known answer: what the topic holds. The gateway writes without transactions, so
    # the ends count records: this module's events, and the DLQ test's records when it ran
    # first (two bad ones, and the three copies its retries sent back).
    ends = sum(int(r[3]) for r in rows)
    assert ends in (EVENTS, EVENTS + 5), rows
    screenshot(driver, "lag", tmp_path)

    driver.get(f"{settings.dashboard_url}/")
    health = {
        tr.find_element(By.TAG_NAME, "td").text.split()[0]: tr.get_attribute("class")
        for tr in driver.find_elements(By.CSS_SELECTOR, "#health tr")[1:]
    }
    assert health == {"gateway": "ok", "worker": "ok", "projector": "ok"}

    def charted() -> int:
        driver.refresh()
        return int(
            driver.execute_script(
                "const c = window.Chart && Chart.getChart('chart-events');"
                "return c ? c.data.datasets[0].data.reduce((a, b) => a + (b || 0), 0) * 60 : 0;"
            )
        )

    # The events/s line, back in events, counts this module's events (the rollup's minutes).
    assert round(until(charted, "the events on the chart", page=driver)) >= EVENTS
    screenshot(driver, "overview", tmp_path)
