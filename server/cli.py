"""The command line: `python -m server` (installed: `tensorflow_model_server`) takes tensorflow_model_server's
flags (flags.py).

argv -> Options (options.py), checked here, in the parent process, so that a bad flag, a bad file,
a missing base path or a port in use exits at once with one clear sentence; then the HTTP server
starts (http_server.py), whose worker processes each build a Worker (worker.py) from the same Options.
"""
from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from typing import NoReturn

from . import flags
from .config import ConfigError
from .logsetup import configure_logging, filter_gpu_probe_noise
from .options import Options
from .registry import StartError

log = logging.getLogger("server")

VERSION = flags.VERSION

ALTS_WITH_SSL = "Either use_alts_credentials must be false or ssl_config_file must be empty."
NO_MODELS = "Both server_options.model_base_path and server_options.model_config_file are empty!"
ALL_THREAD_FLAGS = ("Either configure server_options.tensorflow_session_parallelism or "
                    "(server_options.tensorflow_intra_op_parallelism, server_options.tensorflow_inter_op_parallelism) "
                    "separately. You cannot configure all.")


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> tuple[argparse.Namespace, frozenset[str]]:
    """Parse and check the flags (no files read yet): exits with status 2 and one clear sentence on any
    problem. Returns the parsed flags and the names of those given on the command line. `prog`: the
    command as --help names it (default: python -m <this package>)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = flags.build_parser(prog)
    args = parser.parse_args(argv)
    given = flags.given_flags(argv)
    if args.rest_api_port == 0:
        if args.port == 0 and not args.grpc_socket_path:
            parser.error("At least one of --port, --grpc_socket_path or --rest_api_port must be set")
    elif args.port != 0 and args.port == args.rest_api_port:
        parser.error("--rest_api_port cannot be the same as --port: use a different port for the HTTP/REST API")
    if args.grpc_channel_arguments:
        from .grpc.channel_args import GrpcError, parse_channel_arguments
        try:
            parse_channel_arguments(args.grpc_channel_arguments)
        except GrpcError as exc:
            parser.error(str(exc))
    # Server::BuildAndStart's checks, in its order, with its messages (main.cc prints them on stdout and
    # exits with status 255).
    if args.use_alts_credentials and args.ssl_config_file:
        _failed_to_start(ALTS_WITH_SSL)
    if not args.model_config_file and not args.model_base_path:
        _failed_to_start(NO_MODELS, hint="give --model_base_path=/absolute/path/to/model (with --model_name) "
                                         f"or --model_config_file; `{parser.prog} --help` lists every flag")
    if (args.tensorflow_intra_op_parallelism > 0 and args.tensorflow_inter_op_parallelism > 0
            and args.tensorflow_session_parallelism > 0 and not args.platform_config_file):
        # server.cc checks these only when it builds the session config from the flags, not from the file.
        _failed_to_start(ALL_THREAD_FLAGS)
    return args, given


def _failed_to_start(message: str, code: str = "INVALID_ARGUMENT", hint: str = "") -> NoReturn:
    """Exit as tensorflow_model_server does when Server::BuildAndStart fails: its line on stdout, status 255
    (and, here, what to do on stderr)."""
    print(f"Failed to start server. Error: {code}: {message}", flush=True)
    if hint:
        print(f"error: {hint}", file=sys.stderr)
    raise SystemExit(255)


def build_options(argv: list[str] | None = None, check_paths: bool = True) -> Options:
    """argv -> Options, every file the flags name read; exits like parse_args, raises ConfigError."""
    args, given = parse_args(argv)
    return Options.from_args(args, given, check_paths=check_paths)


def warn_not_honoured(given: frozenset[str]) -> list[str]:
    """One warning line for each given flag that is accepted but has no effect yet; returns them."""
    lines = [f"--{name} is accepted but has no effect in this server yet: {flags.NOT_HONOURED[name]}"
             for name in sorted(given & set(flags.NOT_HONOURED))]
    for line in lines:
        log.warning("%s", line)
    return lines


def check_port_free(host: str, port: int, flag: str = "--rest_api_port", reuse_port: bool = False) -> None:
    """Exit with one sentence when `port` cannot be bound. `reuse_port`: probe as gRPC binds (SO_REUSEPORT),
    so that a port other gRPC servers share is not called taken, as tensorflow_model_server does not."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SystemExit(f"error: port {port} is already in use on {host}: stop the other server "
                                 f"or choose another {flag}") from None
            raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}") from None


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args, given = parse_args(argv, prog)
    configure_logging(args.log_level)
    warn_not_honoured(given)
    if args.model_config_file and args.model_base_path:
        # tensorflow_model_server serves the config file's models and never reads the two single-model flags.
        log.warning("--model_base_path and --model_name are ignored: --model_config_file gives the models")
    try:
        options = Options.from_args(args, given)
    except StartError as exc:
        _failed_to_start(exc.message, code=exc.code)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if options.rest_enabled:
        check_port_free(options.rest_api_host, options.rest_api_port)
    if options.grpc_enabled and options.port:
        check_port_free(options.rest_api_host, options.port, "--port", reuse_port=True)
    if options.grpc_enabled and options.use_alts_credentials:
        from .grpc.credentials import ALTS_UNAVAILABLE, alts_available
        if not alts_available():   # never serve in plaintext instead
            print(f"error: {ALTS_UNAVAILABLE}", file=sys.stderr)
            return 1
    elif options.grpc_enabled and options.ssl_config is not None:
        from .grpc.credentials import ssl_config_problem
        problem = ssl_config_problem(options.ssl_config)   # before any worker starts, as BuildAndStart fails
        if problem:
            _failed_to_start("Failed to BuildAndStart gRPC server", hint=problem)
    filter_gpu_probe_noise()   # before any worker imports TensorFlow
    if not options.rest_enabled:
        from .worker import serve_in_process
        return serve_in_process(options)
    from .http_server import serve
    return serve(options)


def console_main() -> NoReturn:
    """The installed `tensorflow_model_server` command (pyproject.toml): TF Serving's command line."""
    sys.exit(main(prog="tensorflow_model_server"))
