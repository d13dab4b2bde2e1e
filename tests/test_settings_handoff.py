"""The parent hands its Options to the worker processes in a file only the server's user can read,
removed at exit: a real server with --ssl_config_file, whose TLS private key is in no process's
environment (/proc/<pid>/environ), the parent's or any worker's."""
import base64
import binascii
import datetime
import os
import pathlib
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.options import SETTINGS_FILE_ENV

from .serverproc import ServerProcess

pytestmark = pytest.mark.slow


def _key_and_cert() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for task in pathlib.Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _environ(pid: int) -> list[bytes]:
    return pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def _holds(entries: list[bytes], secret: bytes) -> bool:
    """Whether `secret` is in an environment entry, as it is or base64-encoded (a pickle's bytes)."""
    for entry in entries:
        value = entry.partition(b"=")[2]
        if secret in value:
            return True
        try:
            if secret in base64.b64decode(value, validate=True):
                return True
        except (binascii.Error, ValueError):
            pass
    return False


def test_no_process_environment_holds_the_tls_key(testdata, tmp_path):
    key, cert = _key_and_cert()
    secret = "".join(key.splitlines()[1:3]).encode()   # the key's own base64 body, not its PEM header
    ssl = tmp_path / "ssl.config"
    ssl.write_text("server_key: %r\nserver_cert: %r\n" % (key, cert))
    flags = ["--model_name=hp2", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
             f"--ssl_config_file={ssl}"]
    with ServerProcess(flags, grpc=True) as server:
        server.wait_available("hp2")
        pids = [server.proc.pid, *_descendants(server.proc.pid)]
        workers = [p for p in pids[1:] if b"multiprocessing" in pathlib.Path(f"/proc/{p}/cmdline").read_bytes()]
        assert workers, f"no worker process among {pids}"
        settings = None
        for pid in pids:
            entries = _environ(pid)
            assert not _holds(entries, secret), f"process {pid}'s environment holds the TLS key"
            assert not any(e.startswith(b"TF_SERVING_FLASK_OPTIONS=") for e in entries)
            for entry in entries:
                if entry.startswith(SETTINGS_FILE_ENV.encode() + b"="):
                    settings = entry.partition(b"=")[2].decode()
        assert settings is not None, "the workers were not told where their settings are"
        assert stat.S_IMODE(os.stat(settings).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(settings)).st_mode) == 0o700
        assert secret in pathlib.Path(settings).read_bytes().replace(b"\\n", b"\n").replace(b"\n", b"")
        assert server.stop() == 0
    assert not os.path.exists(settings) and not os.path.exists(os.path.dirname(settings))
