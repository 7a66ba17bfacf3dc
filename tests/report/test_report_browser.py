"""The report in a real browser: headless Chromium (Debian's, installed by .ci/run) opens the
page from disk with the network off, over the DevTools protocol (through `websockets`, already a
test dependency). Every figure decodes with a non-zero size and non-blank pixels, every table
is there, the console stays clean, and one screenshot is taken."""

import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vrp.report import ReportFiles

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1280,1600")  # fmt: skip
EXPECTED_TABLES = ("facts", "accuracy", "methods", "probes", "lens", "masking", "masking_by_split",
                   "neurons", "dims", "bypass", "patching_pairs", "localisation", "patching",
                   "published", "warnings")  # fmt: skip
CHECK_IMAGES = """(() => Array.from(document.images).map((img) => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  let colours = 0;
  if (img.naturalWidth > 0) {
    context.drawImage(img, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < pixels.length && seen.size < 50; i += 4 * 97) {
      seen.add(pixels[i] * 65536 + pixels[i + 1] * 256 + pixels[i + 2]);
    }
    colours = seen.size;
  }
  return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
          colours: colours, alt: img.alt};
}))()"""


class DevTools:
    """A minimal DevTools-protocol client of one page: commands, and the events seen so far."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == ident:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=deadline - time.monotonic())))


def _start(folder: Path) -> tuple[subprocess.Popen, str]:
    """Starts Chromium with a fresh profile; returns it and its DevTools host:port."""
    log = folder / "chromium.log"
    with log.open("w") as stderr:  # a file, not a pipe: Chromium keeps writing to it
        browser = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={folder / 'profile'}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and browser.poll() is None:
        found = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", log.read_text())
        if found:
            return browser, found.group(1)
        time.sleep(0.1)
    browser.kill()
    browser.wait()
    raise AssertionError(f"Chromium opened no DevTools port:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def page(tiny_report: ReportFiles, tmp_path_factory: pytest.TempPathFactory):
    if not Path(CHROMIUM).is_file() and os.environ.get("VRP_REQUIRE_CHROMIUM"):
        pytest.fail(f"VRP_REQUIRE_CHROMIUM is set (CI) but there is no Chromium at {CHROMIUM}")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) to "
                    "check the report in a browser; .ci/run installs it in CI")  # fmt: skip
    from websockets.sync.client import connect

    browser, address = _start(tmp_path_factory.mktemp("chromium"))
    try:
        with urllib.request.urlopen(f"http://{address}/json/list", timeout=20) as response:
            targets = json.loads(response.read())
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(url, max_size=None, open_timeout=20) as socket:
            tools = DevTools(socket)
            for domain in ("Page", "Runtime", "Log"):
                tools.send(f"{domain}.enable")
            tools.send("Page.navigate", url=tiny_report.html.resolve().as_uri())
            tools.wait_for("Page.loadEventFired")
            yield tools
    finally:
        browser.terminate()
        browser.wait(timeout=20)


def test_every_figure_decodes_and_is_not_blank(page: DevTools, tiny_report: ReportFiles) -> None:
    images = page.send("Runtime.evaluate", expression=CHECK_IMAGES, returnByValue=True)
    found = images["result"]["value"]
    assert len(found) == len(tiny_report.figures) >= 8
    for image in found:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
        assert image["colours"] >= 3, f"blank figure: {image['alt']}"


def test_every_table_is_present(page: DevTools) -> None:
    ids = page.send("Runtime.evaluate", returnByValue=True,
                    expression="Array.from(document.querySelectorAll('table')).map(t => t.id)")  # fmt: skip
    present = set(ids["result"]["value"])
    assert {f"table-{key}" for key in EXPECTED_TABLES} <= present


def test_the_console_stays_clean(page: DevTools) -> None:
    problems = [e for e in page.events
                if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled"
                    and e["params"].get("type") in ("error", "warning", "assert"))
                or (e.get("method") == "Log.entryAdded"
                    and e["params"]["entry"].get("level") in ("error", "warning"))]  # fmt: skip
    assert not problems, json.dumps(problems, indent=1)[:3000]


def test_screenshot(page: DevTools, tmp_path: Path) -> None:
    shot = page.send("Page.captureScreenshot", format="png")
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("L")
    (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))
    assert image.width >= 800 and image.height >= 600
    low, high = image.getextrema()
    assert high - low > 100  # text and figures on a white page, not a blank or error page
