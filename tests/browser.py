"""A headless Chromium driven over the DevTools protocol, and the browser page's helpers: serve the page from
a static server on loopback, draw an MNIST digit on it stroke by stroke as pointer events, read what it shows.

Used by tests/test_web.py and by docs/record_outputs.py (the chapter's screenshot)."""
from __future__ import annotations

import base64
import itertools
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import websocket

from .serverproc import free_port, stop_group

ROOT = pathlib.Path(__file__).resolve().parent.parent
WEB = ROOT / "code" / "zh" / "savedmodel" / "web"
SCALE = 10  # canvas pixels per MNIST pixel (the page's canvas is 280 x 280)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class StaticServer:
    """`python -m http.server --bind 127.0.0.1` serving code/zh/savedmodel/web/, as the chapter says."""

    def __init__(self, directory: pathlib.Path = WEB):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = directory

    def __enter__(self) -> "StaticServer":
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                      "--directory", str(self.directory)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/index.html", timeout=2).read()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    stop_group(self.proc, timeout=10)
                    raise RuntimeError("the static server did not start")
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        stop_group(self.proc, timeout=10)


class Browser:
    """Headless Chromium with one page; `send` runs a DevTools command and returns its result."""

    def __init__(self, width: int = 760, height: int = 560):
        self.width, self.height = width, height
        self._ids = itertools.count(1)

    def __enter__(self) -> "Browser":
        executable = chromium_path()
        if executable is None:
            raise RuntimeError("chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self.profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port = self._devtools_port()
            deadline = time.monotonic() + 30
            while True:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
                pages = [t for t in targets if t.get("type") == "page"]
                if pages or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                                  suppress_origin=True)
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        except Exception:
            self.__exit__()
            raise
        return self

    def _devtools_port(self) -> int:
        active = pathlib.Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.is_file() and active.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        return int(active.read_text().split()[0])

    def __exit__(self, *exc) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        stop_group(self.proc, timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None) -> dict:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str = "document.readyState === 'complete'", timeout: float = 30) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for(ready, timeout)

    def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout} s: {expression}")
            time.sleep(0.05)

    def screenshot(self, path: pathlib.Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        pathlib.Path(path).write_bytes(base64.b64decode(data))


# ---------------------------------------------------------------- the drawing page

def strokes_of(image: np.ndarray, threshold: float = 0.5) -> list[list[tuple[float, float]]]:
    """A 28x28 digit as pen strokes on the 280x280 canvas: one horizontal stroke per run of bright pixels in a
    row, through the middle of the row, from the first run pixel's centre to the last one's."""
    strokes = []
    for row in range(image.shape[0]):
        bright = np.append(image[row] > threshold, False)
        col = 0
        while col < image.shape[1]:
            if bright[col]:
                end = col
                while bright[end + 1]:
                    end += 1
                y = (row + 0.5) * SCALE
                xs = np.linspace((col + 0.5) * SCALE, (end + 0.5) * SCALE, max(2, end - col + 2))
                strokes.append([(float(x), y) for x in xs])
                col = end + 1
            else:
                col += 1
    return strokes


def canvas_origin(browser: Browser) -> tuple[float, float]:
    box = browser.evaluate("(() => { const b = document.getElementById('pad').getBoundingClientRect();"
                           " return [b.left, b.top] })()")
    return box[0], box[1]


def draw(browser: Browser, strokes, pointer: str = "mouse") -> None:
    """Each stroke as pointer events: press, move through its points, release (mouse or touch)."""
    left, top = canvas_origin(browser)
    for stroke in strokes:
        points = [(left + x, top + y) for x, y in stroke]
        if pointer == "mouse":
            (x, y), rest = points[0], points[1:]
            browser.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y, "button": "left",
                                                      "buttons": 1, "clickCount": 1})
            for x, y in rest:
                browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left",
                                                          "buttons": 1})
            browser.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y, "button": "left",
                                                      "buttons": 0, "clickCount": 1})
        else:
            (x, y), rest = points[0], points[1:]
            browser.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
            for x, y in rest:
                browser.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            browser.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def wait_result(browser: Browser, strokes: int, timeout: float = 30) -> dict:
    """What the page shows once the answer for its last stroke arrived."""
    browser.wait_for(f"document.getElementById('status').dataset.stroke === '{strokes}'", timeout)
    return browser.evaluate("""(() => ({
        status: document.getElementById('status').textContent,
        error: document.getElementById('status').className === 'error',
        digit: document.getElementById('prediction').textContent,
        probabilities: [...document.querySelectorAll('#probabilities li')].map(li => Number(li.dataset.probability)),
        image: window.lastImage || null
    }))()""")


def page_url(static: StaticServer, server_url: str, model: str = "MLP", signature: str = "call") -> str:
    return f"{static.url}/index.html?server={server_url}&model={model}&signature={signature}"
