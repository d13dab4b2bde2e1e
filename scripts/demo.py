"""`make demo`: train and export the MNIST model (unless one exists), serve it, query it, stop.

The same steps a student takes in the chapter, with the same commands:
  1. python code/zh/savedmodel/train_and_export.py      (only when no exported version exists)
  2. python -m server --rest_api_port=8501 --model_name=MLP --model_base_path=<absolute path>
  3. wait until GET /v1/models/MLP says AVAILABLE
  4. python code/zh/savedmodel/client.py
The server runs in its own process group and is always stopped, whatever step fails.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"
BASE_PATH = SAVEDMODEL / "saved_with_signature"


def has_version(base: pathlib.Path) -> bool:
    return base.is_dir() and any(p.name.isdigit() and (p / "saved_model.pb").exists() for p in base.iterdir())


def model_state(port: int, name: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{name}", timeout=2) as r:
            statuses = json.load(r).get("model_version_status", [])
    except (urllib.error.URLError, OSError, ValueError):
        return None
    states = {s.get("state") for s in statuses}
    return "AVAILABLE" if "AVAILABLE" in states else (sorted(states)[0] if states else None)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    if os.name == "nt":  # Windows: no process groups to signal; Ctrl-Break reaches the server's group
        try:
            proc.send_signal(signal.CTRL_BREAK_EVENT)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
            proc.wait()
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for AVAILABLE")
    args = parser.parse_args()
    # SIGTERM (e.g. from a CI runner) unwinds through the `finally` below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    py = sys.executable
    if has_version(BASE_PATH):
        print(f"[demo] using the exported model in {BASE_PATH}", flush=True)
    else:
        print("[demo] step 1: train and export the MNIST model", flush=True)
        subprocess.run([py, str(SAVEDMODEL / "train_and_export.py")], cwd=SAVEDMODEL, check=True)

    cmd = [py, "-m", "server", f"--rest_api_port={args.port}", "--model_name=MLP",
           f"--model_base_path={BASE_PATH}"]
    print("[demo] step 2: " + " ".join(["python"] + cmd[1:]), flush=True)
    group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
             else {"start_new_session": True})
    server = subprocess.Popen(cmd, cwd=ROOT, **group)
    try:
        print("[demo] step 3: waiting for the model to be AVAILABLE", flush=True)
        deadline = time.monotonic() + args.timeout
        while model_state(args.port, "MLP") != "AVAILABLE":
            if server.poll() is not None:
                print(f"[demo] the server exited with status {server.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"[demo] the model was not AVAILABLE after {args.timeout:.0f} s", file=sys.stderr)
                return 1
            time.sleep(0.3)
        print("[demo] step 4: python code/zh/savedmodel/client.py", flush=True)
        result = subprocess.run([py, str(SAVEDMODEL / "client.py"), f"--port={args.port}"], cwd=SAVEDMODEL)
        return result.returncode
    finally:
        stop(server)
        print("[demo] server stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
