"""The gRPC ports' credentials, chosen as TF Serving's BuildServerCredentials (model_servers/server.cc)
chooses them: ALTS with `--use_alts_credentials`, else TLS with `--ssl_config_file`, else plaintext.

Kept apart from the server (gRPC only, no TensorFlow import) so that the command line can find out
before any worker starts whether gRPC makes ALTS credentials on this machine: it does only on Google
Cloud (Google Compute Engine), and a server asked for ALTS never falls back to plaintext.
"""
from __future__ import annotations

from concurrent import futures

import grpc

from .channel_args import GrpcError

ALTS_UNAVAILABLE = ("--use_alts_credentials: gRPC makes ALTS credentials only on Google Cloud (Google Compute "
                    "Engine), and this machine is not one: use --ssl_config_file for TLS elsewhere")


def alts_available() -> bool:
    """Whether gRPC makes ALTS server credentials here (only on Google Cloud): tried on a throwaway
    server and an ephemeral loopback port, never started."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        return server.add_secure_port("127.0.0.1:0", grpc.alts_server_credentials()) != 0
    except RuntimeError:
        return False
    finally:
        server.stop(None)


def ssl_config_problem(ssl) -> str | None:
    """Why gRPC cannot serve TLS with this SSLConfig (a key that is not a PEM private key, a certificate
    that is not a PEM chain, or a key that does not match the certificate), or None when it can: tried on
    a throwaway server and an ephemeral loopback port, never started, so that the command line refuses
    a bad --ssl_config_file before any worker starts (tensorflow_model_server fails in BuildAndStart)."""
    try:
        credentials = server_credentials(ssl)
    except GrpcError as exc:
        return str(exc)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        if server.add_secure_port("127.0.0.1:0", credentials) != 0:
            return None
    except RuntimeError:
        pass
    finally:
        server.stop(None)
    return ("--ssl_config_file: gRPC cannot serve TLS with this server_key and server_cert (not a PEM private "
            "key and certificate chain, or a key that does not match the certificate)")


def server_credentials(ssl, alts: bool = False) -> grpc.ServerCredentials | None:
    """ALTS credentials with `alts`, else TLS credentials from the SSLConfig's settings (None: plaintext),
    as TF Serving's BuildServerCredentials."""
    if alts:
        return grpc.alts_server_credentials()
    if ssl is None:
        return None
    if not ssl.server_key or not ssl.server_cert:
        raise GrpcError("--ssl_config_file: server_key and server_cert are both required")
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=bool(ssl.client_verify),
    )
