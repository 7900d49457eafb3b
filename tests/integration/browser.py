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
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)
