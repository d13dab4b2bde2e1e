"""The browser page (code/zh/savedmodel/web/) in a real headless Chromium, against the real server.

The page is served by `python -m http.server --bind 127.0.0.1` on one port and the model by `python -m server
--rest_api_enable_cors_support=true` on another, so its `:predict` calls are cross-origin as they are for a
reader. Real MNIST test digits are drawn on it stroke by stroke as pointer events (mouse and touch); the page
must show the digit the model predicts for the original MNIST image, and the probabilities the server returns
for the 28x28 image the page made (asked directly). Skips, saying why, when Chromium is not installed
(`make test` installs Debian's chromium when run as root).
"""
import re
import sys

import numpy as np
import pytest
import requests

from . import browser
from .serverproc import ServerProcess

sys.path.insert(0, str(browser.ROOT / "code" / "zh" / "savedmodel"))
from mnist_loader import MNISTLoader  # noqa: E402

pytestmark = pytest.mark.slow

DRAWN = [(0, "mouse"), (1, "touch")]  # (index in the offline MNIST test set, pointer)


@pytest.fixture(scope="module")
def chromium():
    if browser.chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` does it as root)")


@pytest.fixture(scope="module")
def mnist():
    return MNISTLoader(offline=True)


@pytest.fixture(scope="module")
def cors_server(mlp_run):
    with ServerProcess(["--model_name=MLP", f"--model_base_path={mlp_run.base}",
                        "--rest_api_enable_cors_support=true"]) as server:
        server.wait_available("MLP")
        yield server


@pytest.fixture(scope="module")
def page(chromium):
    with browser.StaticServer() as static, browser.Browser() as chrome:
        yield static, chrome


def served_probabilities(server, image):
    answer = requests.post(f"{server.url}/v1/models/MLP:predict", timeout=30,
                           json={"signature_name": "call", "instances": [np.asarray(image)[..., None].tolist()]})
    assert answer.status_code == 200, answer.text
    return np.array(answer.json()["predictions"][0])


@pytest.mark.parametrize("index, pointer", DRAWN)
def test_drawn_digit_is_recognised_like_the_original(page, cors_server, mnist, index, pointer, tmp_path):
    static, chrome = page
    chrome.open(browser.page_url(static, cors_server.url))
    assert chrome.evaluate("location.origin") != cors_server.url  # really cross-origin
    original = mnist.test_data[index, :, :, 0]
    strokes = browser.strokes_of(original)
    assert len(strokes) > 5
    browser.draw(chrome, strokes, pointer)
    shown = browser.wait_result(chrome, len(strokes))
    assert not shown["error"], shown["status"]

    # the page's 28x28 image is made the way MNIST's were: longest side of the bounding box 20, centre of mass
    # in the middle, grey levels 0..1; and it looks like the digit that was drawn
    image = np.array(shown["image"])
    assert image.shape == (28, 28) and image.min() >= 0 and image.max() <= 1
    rows, cols = np.nonzero(image)
    assert max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == 20
    centre = [(np.arange(28) + 0.5) @ image.sum(axis=axis) / image.sum() for axis in (1, 0)]
    assert np.all(np.abs(np.array(centre) - 14) <= 0.5), centre
    assert np.corrcoef(image.ravel(), original.ravel())[0, 1] > 0.7

    # it shows what the server returns for that image, and the digit the model predicts for the original
    expected = served_probabilities(cors_server, image)
    np.testing.assert_allclose(shown["probabilities"], expected, atol=1e-6)
    assert shown["digit"] == str(int(np.argmax(expected)))
    assert shown["digit"] == str(int(np.argmax(served_probabilities(cors_server, original))))
    assert shown["status"] == f"第 {len(strokes)} 笔之后的识别结果。"

    chrome.screenshot(tmp_path / "page.png")
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clear_empties_the_page(page, cors_server, mnist):
    static, chrome = page
    chrome.open(browser.page_url(static, cors_server.url))
    strokes = browser.strokes_of(mnist.test_data[2, :, :, 0])[:3]
    browser.draw(chrome, strokes)
    browser.wait_result(chrome, len(strokes))
    chrome.evaluate("document.getElementById('clear').click()")
    assert chrome.evaluate("document.getElementById('prediction').textContent") == ""
    assert chrome.evaluate("document.querySelectorAll('#probabilities li').length") == 0
    blank = chrome.evaluate("Array.from(document.getElementById('pad').getContext('2d')"
                            ".getImageData(0, 0, 280, 280).data).some((v, i) => i % 4 !== 3 && v !== 0)")
    assert blank is False


def test_without_cors_the_page_names_the_flag(page, mlp_run, mnist):
    static, chrome = page
    with ServerProcess(["--model_name=MLP", f"--model_base_path={mlp_run.base}"]) as server:
        server.wait_available("MLP")
        # the server answers curl, but its answer carries no CORS header, so the browser hides it from the page
        direct = requests.post(f"{server.url}/v1/models/MLP:predict", json={"instances": [[[[0.0]] * 28] * 28]},
                               headers={"Origin": static.url}, timeout=30)
        assert direct.status_code == 200 and "Access-Control-Allow-Origin" not in direct.headers
        chrome.open(browser.page_url(static, server.url))
        strokes = browser.strokes_of(mnist.test_data[0, :, :, 0])[:2]
        browser.draw(chrome, strokes)
        shown = browser.wait_result(chrome, len(strokes))
    assert shown["error"] and shown["digit"] == ""
    assert "--rest_api_enable_cors_support=true" in shown["status"]
    assert shown["status"].startswith(f"无法访问 {server.url}/v1/models/MLP:predict")


def test_page_needs_no_build_step_and_no_cdn():
    html = (browser.WEB / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'<script src="([^"]+)"', html) == ["digit.js"]
    for text in (html, (browser.WEB / "digit.js").read_text(encoding="utf-8")):
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
        assert "import " not in text and "require(" not in text
    assert sorted(p.name for p in browser.WEB.iterdir()) == ["digit.js", "index.html"]
