"""习题 7 的参考答案：像浏览器那样发送 CORS 预检请求，并判断浏览器会不会放行。"""
import requests

SIMPLE_METHODS = {"GET", "HEAD", "POST"}  # 不必出现在 Access-Control-Allow-Methods 中


def preflight(server_url, model_name, origin):
    url = "%s/v1/models/%s:predict" % (server_url, model_name)
    response = requests.options(url, timeout=10, headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    return {name.lower(): value for name, value in response.headers.items()}


def _listed(value):
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def browser_allows(headers, origin, method="POST", request_headers=("content-type",)):
    allowed_origin = headers.get("access-control-allow-origin")
    if allowed_origin not in ("*", origin):
        return False
    methods = _listed(headers.get("access-control-allow-methods", ""))
    if method.upper() not in SIMPLE_METHODS and "*" not in methods and method.lower() not in methods:
        return False
    allowed_headers = _listed(headers.get("access-control-allow-headers", ""))
    return "*" in allowed_headers or all(h.lower() in allowed_headers for h in request_headers)


if __name__ == "__main__":
    headers = preflight("http://localhost:8501", "MLP", "http://localhost:8000")
    print(headers)
    print("浏览器会放行" if browser_allows(headers, "http://localhost:8000") else "浏览器会拦下这个请求")
