"""A real headless Chromium for the web page tests, driven by Selenium through Debian's
chromium-driver (installed by .ci/run; installed here too when missing, as a fallback for a
local run as root). One browser per test module keeps the suite lean."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMEDRIVER = Path("/usr/bin/chromedriver")


def ensure_chromium() -> None:
    """Debian's chromium + chromium-driver, installed where missing (CI runs as root)."""
    if CHROMEDRIVER.exists() and shutil.which("chromium"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "chromium", "chromium-driver"],
                   check=True, env=env)


def start_browser(profile: Path, width: int = 1280, height: int = 900) -> Any:
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def by_id(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def ids_present(browser: Any, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return bool(browser.find_elements(By.ID, element_id))


def sign_in(browser: Any, url: str, token: str) -> None:
    """Open ``url``; on the sign-in form, paste ``token``; wait for the signed-in page."""
    browser.get(url)
    if not ids_present(browser, "token"):
        browser.delete_all_cookies()
        browser.get(url)
    by_id(browser, "token").send_keys(token)
    by_id(browser, "sign-in").click()
    try:
        wait_until(lambda: ids_present(browser, "who"))
    except AssertionError:
        raise AssertionError(browser.current_url + browser.page_source[:3000]) from None


def click_and_wait(browser: Any, element_id: str, then: str) -> None:
    """Click a submit button and wait for the next page to show element ``then``."""
    old = browser.find_element("tag name", "html")
    by_id(browser, element_id).click()
    wait_new_page(browser, old, then)


def is_stale(element: Any) -> bool:
    """The element belongs to a page that was replaced (any error asking about it means so)."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
        return False
    except WebDriverException:
        return True


def wait_new_page(browser: Any, old: Any, then: str) -> None:
    """Wait until the page holding ``old`` was replaced by one showing element ``then``."""
    from selenium.common.exceptions import WebDriverException

    def ready() -> bool:
        try:
            return is_stale(old) and ids_present(browser, then)
        except WebDriverException:
            return False

    wait_until(ready)


def overflow(browser: Any) -> list[str]:
    """What sticks out of the viewport sideways: the document itself, or any element whose box
    ends right of the window (or starts left of it)."""
    return browser.execute_script("""
        const out = [];
        const w = window.innerWidth;
        const sw = document.documentElement.scrollWidth;
        if (sw > w) out.push('document ' + sw + ' > ' + w);
        for (const el of document.body.querySelectorAll('*')) {
          const r = el.getBoundingClientRect();
          if (r.width === 0 && r.height === 0) continue;
          if (r.right > w + 0.5 || r.left < -0.5)
            out.push(el.tagName + '#' + el.id + '.' + el.className + ' ' + r.left + '..' + r.right);
        }
        return out;""")
