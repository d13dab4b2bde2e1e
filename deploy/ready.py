"""Readiness check for a container: is a version of the model AVAILABLE? (TF Serving's model status API)

    python deploy/ready.py PORT MODEL_NAME      # exit 0: ready; exit 1: not (the reason on stdout)

Kubernetes' httpGet probe counts any 200 as ready, but GET /v1/models/NAME answers 200 while a version
is still LOADING or after it failed (state END with the error); this asks for AVAILABLE. Standard
library only, so that it starts fast in the server's image.
"""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request


def check(port: int, model: str, timeout: float = 2.0) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}/v1/models/{model}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status = json.load(answer).get("model_version_status", [])
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code} {exc.read().decode(errors='replace').strip()}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    available = [v["version"] for v in status if v.get("state") == "AVAILABLE"]
    if available:
        return True, f"{model} version(s) {', '.join(available)} AVAILABLE"
    return False, f"{model}: no version AVAILABLE: {json.dumps(status)}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: ready.py PORT MODEL_NAME")
        return 2
    ok, why = check(int(argv[0]), argv[1])
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
