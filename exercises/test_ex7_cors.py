"""习题 7 的检查：browser_allows 按 CORS 的规则判断；preflight 发出浏览器那样的预检请求，并读懂真正的服务器。"""
import http.server
import threading

import pytest

from checklib import call

PAGE = "http://localhost:8000"

# (服务器的响应头, 接下来的方法, 接下来的请求头, 浏览器是否放行, 说明)
CASES = [
    ({"access-control-allow-origin": "*", "access-control-allow-methods": "POST, GET",
      "access-control-allow-headers": "Content-Type"}, "POST", ("content-type",), True, "允许任何源、POST 与 Content-Type"),
    ({}, "POST", ("content-type",), False, "响应中没有任何 CORS 响应头（服务器没有开启 CORS）"),
    ({"access-control-allow-origin": "http://example.com", "access-control-allow-headers": "content-type"},
     "POST", ("content-type",), False, "只允许另一个源"),
    ({"access-control-allow-origin": PAGE, "access-control-allow-headers": "X-Other, CONTENT-TYPE"},
     "POST", ("content-type",), True, "允许的正是这个源；请求头名不分大小写；POST 不列出也允许"),
    ({"access-control-allow-origin": "*", "access-control-allow-methods": "POST, GET"},
     "POST", ("content-type",), False, "没有允许 Content-Type 请求头"),
    ({"access-control-allow-origin": "*", "access-control-allow-headers": "*"},
     "POST", ("content-type", "x-trace"), True, "允许任何请求头"),
    ({"access-control-allow-origin": "*", "access-control-allow-methods": "POST, GET",
      "access-control-allow-headers": "content-type"}, "PUT", ("content-type",), False, "PUT 不是简单方法，也没有被允许"),
]


class RecordingServer:
    """记下收到的 OPTIONS 请求，并像开启了 CORS 的服务器那样响应。"""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_OPTIONS(self):
                outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "Content-Type")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.exercise
def test_ex7_cors(load_exercise, request):
    ex = load_exercise("ex7_cors")
    for headers, method, request_headers, expected, why in CASES:
        got = call(ex.browser_allows, headers, PAGE, method, request_headers)
        assert got is expected or got == expected, (
            f"browser_allows 判断错了（{why}）：响应头 {headers}，方法 {method}，请求头 {list(request_headers)}，"
            f"应当返回 {expected}，实际返回 {got!r}")

    with RecordingServer() as fake:
        headers = call(ex.preflight, fake.url, "MLP", PAGE)
        assert fake.requests, "preflight 没有向服务器发送任何请求"
        method, path, sent = fake.requests[-1]
    assert method == "OPTIONS", f"预检请求的方法应当是 OPTIONS，而不是 {method}"
    assert path == "/v1/models/MLP:predict", f"预检请求的地址应当是 /v1/models/MLP:predict，而不是 {path}"
    assert sent.get("origin") == PAGE, f"预检请求应当带上 Origin: {PAGE}，实际的请求头是 {sent}"
    assert sent.get("access-control-request-method") == "POST", "预检请求应当带上 Access-Control-Request-Method: POST"
    assert "content-type" in sent.get("access-control-request-headers", "").lower(), (
        "预检请求应当带上 Access-Control-Request-Headers: content-type")
    assert isinstance(headers, dict) and headers.get("access-control-allow-origin") == "*", (
        f"preflight 应当返回键为小写的响应头，实际返回 {headers!r}")

    # 真正的服务器（启动时加了 --rest_api_enable_cors_support=true）
    server = request.getfixturevalue("server")
    headers = call(ex.preflight, server.url, "MLP", PAGE)
    assert call(ex.browser_allows, headers, PAGE) is True, (
        f"开启了 CORS 的服务器对预检请求返回了 {headers}，浏览器会放行，browser_allows 却说不会")
