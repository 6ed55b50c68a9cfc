"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) over the W3C WebDriver
protocol, spoken with httpx: no browser download, no extra Python package.

    with Browser.headless() as browser:
        browser.go("http://127.0.0.1:8470/dashboard")
        browser.text(browser.find("h1"))
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    def __init__(self, client: httpx.Client, session: str) -> None:
        self._client = client
        self._session = session

    @classmethod
    @contextmanager
    def headless(cls, width: int = 1280, height: int = 1800) -> Iterator[Browser]:
        driver = shutil.which("chromedriver")
        if driver is None or not Path(CHROMIUM).exists():
            raise RuntimeError("chromium / chromedriver missing: bash .ci/run installs them")
        port = _free_port()
        proc = subprocess.Popen(
            [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/status").json()["value"]["ready"]:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("chromedriver did not become ready")
                time.sleep(0.2)
            options = {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    f"--window-size={width},{height}",
                ],
            }
            caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
            reply = client.post("/session", json=caps)
            reply.raise_for_status()
            browser = cls(client, reply.json()["value"]["sessionId"])
            try:
                yield browser
            finally:
                client.delete(f"/session/{browser._session}")
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = self._client.request(method, f"/session/{self._session}{path}", json=body)
        value = reply.json()["value"]
        if reply.status_code != 200:
            raise RuntimeError(f"WebDriver {method} {path}: {value}")
        return value

    def go(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return str(self._call("GET", "/url"))

    @property
    def title(self) -> str:
        return str(self._call("GET", "/title"))

    def find(self, css: str) -> str:
        return str(self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css: str) -> list[str]:
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [str(e[ELEMENT]) for e in found]

    def text(self, element: str) -> str:
        return str(self._call("GET", f"/element/{element}/text"))

    def attribute(self, element: str, name: str) -> str | None:
        value = self._call("GET", f"/element/{element}/attribute/{name}")
        return None if value is None else str(value)

    def type(self, element: str, text: str) -> None:
        self._call("POST", f"/element/{element}/value", {"text": text})

    def click(self, element: str) -> None:
        self._call("POST", f"/element/{element}/click", {})

    def script(self, source: str) -> Any:
        return self._call("POST", "/execute/sync", {"script": source, "args": []})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
