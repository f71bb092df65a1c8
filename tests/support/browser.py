"""Debian's chromium, headless, driven by selenium through Debian's chromedriver: the
web page's tests run in a real browser, offline (no selenium-manager download), with a
fresh profile each time and a fake microphone (a test tone) for greeting recording."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import JavascriptException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.procs import Managed

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI containers; the page is our own
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",  # a beeping fake microphone
)
PHONE_SIZE = (412, 915)  # CSS pixels of a common phone screen


class Browser(Managed):
    """One headless Chromium; ``quit`` stops it and its chromedriver."""

    def __init__(self, size: tuple[int, int] = PHONE_SIZE) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="vm-chromium-"))
        self.downloads = self.profile / "downloads"
        self.size = size
        self.driver: webdriver.Chrome | None = None

    def start(self) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={self.size[0]},{self.size[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(self.downloads),
                "download.prompt_for_download": False,
            },
        )
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        # Headless windows are at least 500 pixels wide: emulate the phone's own viewport.
        width, height = self.size
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )

    def stop(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
        shutil.rmtree(self.profile, ignore_errors=True)

    @property
    def page(self) -> webdriver.Chrome:
        assert self.driver is not None, "the browser is not started"
        return self.driver

    def open(self, url: str) -> None:
        self.page.get(url)

    def js(self, script: str, *args: object) -> Any:
        """Run ``script`` (a function body: ``return ...``) in the page."""
        return self.page.execute_script(script, *args)

    def type(self, element_id: str, text: str) -> None:
        field = self.page.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text)

    def click(self, selector: str) -> None:
        self.page.find_element(By.CSS_SELECTOR, selector).click()

    def accept_dialog(self) -> str:
        """Accept the confirm() dialog the page opened; returns its text."""
        alert = WebDriverWait(self.page, 5).until(lambda page: page.switch_to.alert)
        text = alert.text
        alert.accept()
        return text

    def wait(self, condition: Callable[[], object], within: float = 10) -> Any:
        """Poll ``condition`` (a page that redraws may drop an element under it: that
        is a "not yet"); fail with the page's status line and console."""

        def ready(_: object) -> object:
            try:
                return condition()
            except (JavascriptException, WebDriverException):
                return False

        try:
            return WebDriverWait(self.page, within, poll_frequency=0.1).until(ready)
        except WebDriverException as exc:
            raise AssertionError(f"gave up after {within} s: {self.describe()}") from exc

    def status(self) -> str:
        return str(self.js("return document.getElementById('status').textContent"))

    def console(self) -> list[dict[str, Any]]:
        return list(self.page.get_log("browser"))  # type: ignore[no-untyped-call]

    def describe(self) -> str:
        try:
            return f"status {self.status()!r}; console {self.console()}"
        except WebDriverException as exc:
            return f"(the browser does not answer: {exc.msg})"

    def downloaded(self) -> list[Path]:
        """Files the browser has finished downloading."""
        if not self.downloads.is_dir():
            return []
        return sorted(p for p in self.downloads.iterdir() if p.suffix != ".crdownload")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.page.save_screenshot(str(path)), f"no screenshot at {path}"
        return path
