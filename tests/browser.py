"""A real headless Chromium (the Debian package) driven over the DevTools protocol, for page tests.

Why not Playwright or Selenium: both fetch their own browser builds from the network.  The DevTools
protocol is a websocket speaking JSON; ``websocket-client`` is all it takes to load a page, collect its
console errors and evaluate an expression in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser binary, or None when none is installed."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _base_args(binary: str, profile: str) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--hide-scrollbars"]


def screenshot(url: str, out: str, *, width: int = 1100, height: int = 1800, timeout: float = 120) -> None:
    """``chromium --headless --screenshot`` of ``url`` into ``out`` (PNG)."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError("no chromium installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        args = _base_args(binary, profile) + [f"--window-size={width},{height}", f"--screenshot={out}", url]
        subprocess.run(args, check=True, capture_output=True, timeout=timeout)


class Page:
    """One browser tab: ``load(url)`` then ``evaluate(js)``; ``errors`` collects console errors."""

    def __init__(self, timeout: float = 60.0):
        import websocket

        binary = find_chromium()
        if binary is None:
            raise RuntimeError("no chromium installed (apt-get install -y chromium)")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="avsets-chromium-")
        args = _base_args(binary, self._profile) + ["--remote-debugging-port=0", "--remote-allow-origins=*",
                                                    "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._port()
        deadline = time.monotonic() + timeout
        target = None
        while target is None and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                target = next((t for t in json.load(r) if t.get("type") == "page"), None)
            if target is None:
                time.sleep(0.1)
        if target is None:
            self.close()
            raise RuntimeError("chromium opened no page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self._id = 0
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)

    def _port(self) -> int:
        """Read ``DevTools listening on ws://127.0.0.1:PORT/...`` from the browser's stderr."""
        deadline = time.monotonic() + self.timeout
        assert self.proc.stderr is not None
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                return int(m.group(1))
        self.close()
        raise RuntimeError("chromium did not start its DevTools server: " + "".join(seen[-5:]))

    def _record(self, msg: dict[str, Any]) -> None:
        self.events.append(msg)
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(params["entry"].get("text", ""))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._record(msg)

    def load(self, url: str) -> None:
        """Navigate and wait for the load event (every embedded image decoded by then)."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self._record(msg)
            if msg.get("method") == "Page.loadEventFired":
                return
        raise TimeoutError(f"{url} did not finish loading")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_url(path: str | os.PathLike[str]) -> str:
    return "file://" + os.path.abspath(os.fspath(path))
