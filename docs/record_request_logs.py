"""Record the outputs docs/request_logs.rst shows, by running the code: `python docs/record_request_logs.py`.

What runs (offline; the chapter's MLP is trained first unless --model_base_path names an export):
  1. `python -m server --model_config_file=...` (REST and gRPC on free loopback ports) serving the MLP with a
     logging_config at sampling_rate 1.0; the config file is recorded (models.config);
  2. client.py (REST) and client_grpc.py (gRPC) against it; the server is stopped (its request log is flushed);
  3. code/zh/savedmodel/read_request_log.py on the log files (read_request_log.txt);
  4. `python -m server.make_warmup` on them, into a copy of version 1 (make_warmup.txt);
  5. a server without logging serves version 1; the copy is published as version 2, and the server's line
     about its warm-up is recorded (warmup_log.txt).
Files go to docs/_outputs_request_logs/ (or --out DIR; beside docs/_outputs/, which docs/record_outputs.py
writes); temporary paths are written as the reader's (/tmp/request_logs, /tmp/MLP_2,
/home/.../code/zh/savedmodel/...). tests/test_docs_request_logs.py records again into
a temporary folder and compares.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from docs.record_outputs import READER_SAVEDMODEL, SAVEDMODEL, _run  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

OUT = ROOT / "docs" / "_outputs_request_logs"
READER_LOGS = "/tmp/request_logs"

CONFIG = """model_config_list {
  config {
    name: "MLP"
    base_path: "%(base)s"
    model_platform: "tensorflow"
    logging_config {
      log_collector_config { type: "tfrecord" filename_prefix: "%(logs)s/MLP" }
      sampling_config { sampling_rate: 1.0 }
    }
  }
}
"""


def record(out: pathlib.Path, model_base_path: pathlib.Path | None = None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="request-logs-") as tmp:
        work = pathlib.Path(tmp)
        base = work / "saved_with_signature"
        if model_base_path is None:
            _run([py, "train_and_export.py", "--model_base_path", str(base)], SAVEDMODEL, timeout=600)
        else:
            first = sorted(p for p in pathlib.Path(model_base_path).iterdir() if p.name.isdigit())[0]
            shutil.copytree(first, base / "1")
        logs = work / "request_logs"
        reader_base = f"{READER_SAVEDMODEL}/saved_with_signature"

        def readers(text: str) -> str:
            text = text.replace(str(logs), READER_LOGS).replace(str(base), reader_base)
            return re.sub(r"MLP-\d+-", "MLP-12345-", text)   # the server's process id in the file names

        config = work / "models.config"
        config.write_text(CONFIG % {"base": base, "logs": logs})
        (out / "models.config").write_text(CONFIG % {"base": reader_base, "logs": READER_LOGS})
        with ServerProcess([f"--model_config_file={config}"], grpc=True) as server:
            server.wait_available("MLP")
            _run([py, "client.py", "--port", str(server.port)], SAVEDMODEL)
            _run([py, "client_grpc.py", "--port", str(server.grpc_port)], SAVEDMODEL)
            server.stop()
        read = _run([py, "read_request_log.py", str(logs / "MLP")], SAVEDMODEL)
        (out / "read_request_log.txt").write_text(readers(read), encoding="utf-8")
        staged = work / "version_2"
        shutil.copytree(base / "1", staged)
        made = _run([py, "-m", "server.make_warmup", "--version_dir", str(staged), str(logs / "MLP")], ROOT)
        made = made.replace(str(staged), "/tmp/MLP_2")
        (out / "make_warmup.txt").write_text(readers(made), encoding="utf-8")
        config.write_text(f'model_config_list {{ config {{ name: "MLP" base_path: "{base}" '
                          'model_platform: "tensorflow" }}')
        with ServerProcess([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"]) as server:
            server.wait_available("MLP", "1")
            staged.rename(base / "2")
            server.wait_available("MLP", "2")
            line = server.wait_log("Number of warmup records read")
        line = line[line.index("Finished reading warmup data"):]
        (out / "warmup_log.txt").write_text(readers(line) + "\n", encoding="utf-8")
    return sorted(p.name for p in out.iterdir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--model_base_path", default=None, help="an exported MLP (default: train one)")
    args = parser.parse_args()
    names = record(pathlib.Path(args.out), pathlib.Path(args.model_base_path) if args.model_base_path else None)
    print("recorded:", ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
