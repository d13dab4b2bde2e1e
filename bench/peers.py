"""The servers a TensorFlow user would pick instead, each in its own environment.

`make peers` (run by `make bench`) creates `.venv-peers/<name>/` for each: a virtualenv that sees the
project's own site-packages through a .pth file (so the peers run the same TensorFlow 2.21.0, numpy and
SavedModel loader as this server) and installs what the peer adds, pinned, from
bench/requirements-<name>.txt; a package pinned there (KServe's protobuf, for one) shadows the
project's copy inside that environment only. Nothing here is in the project's requirements.txt.

  kserve   KServe's Python ModelServer (bench/kserve_server.py), V1 protocol = TF Serving's REST API
  bentoml  BentoML (bench/bentoml_service.py), a @bentoml.service whose API takes TF Serving's bodies
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

from bench.common import MODEL_NAME
from bench.procs import ROOT, Readiness

ENVS = ROOT / ".venv-peers"


@dataclass(frozen=True)
class Peer:
    name: str
    ready: Readiness

    @property
    def env(self) -> pathlib.Path:
        return ENVS / self.name

    @property
    def python(self) -> pathlib.Path:
        return self.env / "bin" / "python"

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None when its environment is there."""
        if not self.python.exists():
            where = self.env.relative_to(ROOT) if self.env.is_relative_to(ROOT) else self.env
            return (f"its environment {where} does not exist "
                    f"(`make peers` creates it from bench/requirements-{self.name}.txt)")
        return None

    def command(self, model_path: pathlib.Path, port: int, intra_op: int, inter_op: int) -> tuple[list[str], dict]:
        """The command line and the extra environment variables that serve `model_path` on `port`,
        TensorFlow running with the given thread settings."""
        py = str(self.python)
        if self.name == "kserve":
            return ([py, "-m", "bench.kserve_server", "--http_port", str(port), "--model_name", MODEL_NAME,
                     "--model_base_path", str(model_path), f"--intra_op={intra_op}", f"--inter_op={inter_op}"], {})
        return ([py, "-m", "bentoml", "serve", "bench.bentoml_service:SavedModel", "--host", "127.0.0.1",
                 "--port", str(port)],
                {"BENCH_MODEL_BASE_PATH": str(model_path), "BENCH_MODEL_NAME": MODEL_NAME,
                 "BENCH_INTRA_OP": str(intra_op), "BENCH_INTER_OP": str(inter_op), "BENTOML_DO_NOT_TRACK": "True"})


PEERS = {
    "kserve": Peer("kserve", Readiness(f"/v1/models/{MODEL_NAME}", lambda body: b'"ready":true' in body)),
    "bentoml": Peer("bentoml", Readiness("/readyz", lambda body: True)),
}
