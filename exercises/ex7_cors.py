"""习题 7：浏览器会不会放行这个跨源请求？（CORS）

浏览器中的网页（例如 code/zh/savedmodel/web/，来自 http://localhost:8000）要调用另一个源上的模型服务器
（http://localhost:8501）时，因为请求的 Content-Type 是 application/json，浏览器会先发一个 OPTIONS 请求
（“预检”），带着三个请求头：
    Origin: 网页的源，例如 http://localhost:8000
    Access-Control-Request-Method: 接下来要用的方法，这里是 POST
    Access-Control-Request-Headers: 接下来要带的非简单请求头，这里是 content-type
服务器在响应头中说明它允许什么：
    Access-Control-Allow-Origin: 允许的源（"*" 表示任何源）
    Access-Control-Allow-Methods: 允许的方法，逗号分隔（GET、HEAD、POST 这三个“简单方法”不列出也允许）
    Access-Control-Allow-Headers: 允许的请求头，逗号分隔，不分大小写（"*" 表示任何请求头）
请完成：
1. preflight：像浏览器那样发送预检请求，返回响应头（键一律小写的 dict）；
2. browser_allows：按上面的规则判断浏览器会不会放行接下来的请求。
运行检查：
    python -m pytest -m exercise exercises/test_ex7_cors.py
"""
import requests  # noqa: F401 -- 完成 preflight 时要用到它


def preflight(server_url, model_name, origin):
    url = "%s/v1/models/%s:predict" % (server_url, model_name)
    # TODO: 用 requests.options 发送预检请求，带上 Origin、Access-Control-Request-Method（POST）
    #       与 Access-Control-Request-Headers（content-type）三个请求头
    raise NotImplementedError("向 %s 发送 OPTIONS 预检请求，返回 {小写的响应头名: 值}" % url)


def browser_allows(headers, origin, method="POST", request_headers=("content-type",)):
    # TODO: 检查 access-control-allow-origin、access-control-allow-methods 与 access-control-allow-headers
    raise NotImplementedError("按 CORS 的规则返回 True 或 False")


if __name__ == "__main__":
    headers = preflight("http://localhost:8501", "MLP", "http://localhost:8000")
    print(headers)
    print("浏览器会放行" if browser_allows(headers, "http://localhost:8000") else "浏览器会拦下这个请求")
