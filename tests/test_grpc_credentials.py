"""server/grpc/credentials.py: the gRPC ports' credentials as TF Serving's BuildServerCredentials chooses
them; --use_alts_credentials serves ALTS or nothing, never plaintext."""
import json
import shutil
import socket
import subprocess
import sys
import types

import pytest

from server.grpc import credentials
from server.grpc.channel_args import GrpcError
from server.grpc.server import GrpcServer

from .serverproc import ROOT, free_port


def _options(**overrides):
    values = dict(port=free_port(), grpc_socket_path="", grpc_channel_arguments="", grpc_max_threads=2,
                  enable_grpc_healthcheck_service=False, ssl_config=None, enable_serialization_as_tensor_content=False,
                  rest_api_host="127.0.0.1", models=())
    values.update(overrides)
    return types.SimpleNamespace(**values)


def test_alts_with_tls_is_refused_as_tensorflow_model_server_refuses_it():
    done = subprocess.run([sys.executable, "-m", "server", "--use_alts_credentials", "--ssl_config_file=ssl.txt",
                           "--model_base_path=/models/m"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (255, "Failed to start server. Error: INVALID_ARGUMENT: Either "
                                                   "use_alts_credentials must be false or ssl_config_file must be "
                                                   "empty.\n")


def _refused(port) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.mark.skipif(credentials.alts_available(), reason="gRPC makes ALTS credentials here (Google Cloud)")
def test_alts_where_grpc_makes_no_alts_credentials_the_server_does_not_start(testdata):
    with pytest.raises(GrpcError, match="ALTS credentials only on Google Cloud"):
        GrpcServer(None, _options(use_alts_credentials=True)).start()
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "server", f"--port={port}", "--rest_api_host=127.0.0.1",
                           "--use_alts_credentials", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: {credentials.ALTS_UNAVAILABLE}" in done.stderr
    assert _refused(port)


SANDBOX = ("ip link set lo up && mount -t tmpfs tmpfs /sys/class && mkdir -p /sys/class/dmi/id && "
           "echo 'Google Compute Engine' > /sys/class/dmi/id/product_name && exec \"$@\"")


def _sandbox(*command, timeout=180):
    """`command` with its own network (loopback only: nothing leaves it) and mount namespaces, where gRPC
    reads the machine's product name as a Google Compute Engine VM's and so makes ALTS credentials."""
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--net", "sh", "-c", SANDBOX, "sh",
                           *command], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not (shutil.which("unshare") and shutil.which("ip")), reason="needs unshare and ip")
def test_alts_where_grpc_makes_alts_credentials_a_plaintext_client_gets_no_answer(testdata):
    probe = _sandbox(sys.executable, "-c", "import sys; from server.grpc import credentials; "
                     "sys.exit(0 if credentials.alts_available() else 3)", timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"no sandbox where gRPC makes ALTS credentials: {probe.stderr.strip()[-300:]}")
    done = _sandbox(sys.executable, "-m", "tests.altssandbox", str(testdata / "saved_model_half_plus_two_cpu"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The server started with ALTS and listens, plaintext gRPC works in the sandbox, yet a plaintext
    # Predict gets no answer: the ALTS handshake fails (no handshaker service outside Google Cloud).
    assert result == {"control": "OK", "listening": True, "plaintext_predict": "UNAVAILABLE", "alive": True,
                      "alts_logged": True}, result
