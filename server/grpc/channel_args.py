"""`--grpc_channel_arguments`, read as TF Serving reads it (model_servers/server.cc: parseGrpcChannelArgs).

Kept apart from the server (no gRPC or TensorFlow import) so that the command line can check the flag
before any worker starts.
"""
from __future__ import annotations


class GrpcError(Exception):
    """The gRPC server cannot start as configured (a bad flag value, a port in use): one sentence."""


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """"grpc.max_connection_age_ms=1000,grpc.lb_policy_name=x" -> [(key, value)]: a value that reads as a
    32-bit integer is passed as one, any other as a string; an item without "=" is an error."""
    out: list[tuple[str, int | str]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GrpcError(f"--grpc_channel_arguments: expected key=value, got {item!r}")
        try:
            number = int(value)
        except ValueError:
            out.append((key, value))
            continue
        out.append((key, number) if -2**31 <= number < 2**31 else (key, value))
    return out
