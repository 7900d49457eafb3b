"""A real headless browser for the tests: Debian's chromium, driven by selenium through
Debian's chromedriver."""

from __future__ import annotations

from typing import Any


def browser(width: int = 1400, height: int = 900) -> Any:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for failures
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def console(driver: Any) -> str:
    """What the page wrote to its console and the errors it hit (a failure's evidence)."""
    try:
        entries = driver.get_log("browser")
    except Exception as exc:  # the log is evidence only: never the failure itself
        return f"(no console log: {exc!r})"
    return "\n".join(f"{e.get('level')} {e.get('message')}" for e in entries) or "(empty)"
