"""server/cli.py: argv -> Options, the checks made before any worker starts, and the warnings for flags
that are accepted but change nothing yet."""
import logging
import subprocess
import sys
import time

import pytest

from server import cli, flags

from .serverproc import ROOT, stop_group

BASE = ["--rest_api_port=8501", "--model_base_path=/models/m"]

# A valid value for every tensorflow_model_server flag.
SAMPLES = {"port": "9000", "grpc_socket_path": "/tmp/s.sock", "grpc_channel_arguments": "a=1",
           "grpc_max_threads": "2", "rest_api_port": "8501", "rest_api_num_threads": "2",
           "rest_api_timeout_in_ms": "10", "model_name": "m", "model_base_path": "/models/m",
           "model_config_file_poll_wait_seconds": "2", "file_system_poll_wait_seconds": "2",
           "saved_model_tags": "serve", "num_load_threads": "2", "num_unload_threads": "2",
           "max_num_load_retries": "1", "load_retry_interval_micros": "-1", "num_request_iterations_for_warmup": "2",
           "tensorflow_session_parallelism": "2", "tensorflow_intra_op_parallelism": "1",
           "tensorflow_inter_op_parallelism": "-1", "per_process_gpu_memory_fraction": "0.5",
           "mixed_precision": "bfloat16", "num_tflite_pools": "2", "num_tflite_interpreters_per_pool": "2",
           "ssl_config_file": "x", "batching_parameters_file": "x", "model_config_file": "",
           "tensorflow_session_config_file": "x", "platform_config_file": "x",
           "thread_pool_factory_config_file": "x", "monitoring_config_file": "x"}


@pytest.mark.parametrize("name", [n for n in flags.tf_flag_names() if n != "version"])
def test_every_tensorflow_model_server_flag_is_accepted(name):
    value = SAMPLES.get(name, "true")
    args, given = cli.parse_args([*BASE, f"--{name}={value}"])
    assert name in given


def test_bool_flags_take_tf_servings_forms():
    args, _ = cli.parse_args([*BASE, "--enable_batching", "--enable_model_warmup=false", "--enable_profiler=0"])
    assert (args.enable_batching, args.enable_model_warmup, args.enable_profiler) == (True, False, False)


@pytest.mark.parametrize("argv, message", [
    (["--tensorflow_session_parallelism=2", "--tensorflow_intra_op_parallelism=2",
      "--tensorflow_inter_op_parallelism=2"],
     "Either configure server_options.tensorflow_session_parallelism or "
     "(server_options.tensorflow_intra_op_parallelism, server_options.tensorflow_inter_op_parallelism) "
     "separately. You cannot configure all."),
    ([], "Both server_options.model_base_path and server_options.model_config_file are empty!"),
])
def test_build_and_start_checks_fail_as_tensorflow_model_server(argv, message, capsys):
    # Server::BuildAndStart's messages, printed on stdout by main.cc, exit status 255.
    base = [a for a in BASE if not a.startswith("--model_base_path")] if not argv else BASE
    with pytest.raises(SystemExit) as e:
        cli.parse_args([*base, *argv])
    assert e.value.code == 255
    assert capsys.readouterr().out == f"Failed to start server. Error: INVALID_ARGUMENT: {message}\n"


def test_no_model_also_says_what_to_give(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--rest_api_port=8501"])
    assert "--model_base_path=" in capsys.readouterr().err


def test_model_config_file_wins_over_model_base_path_as_in_tf_serving(tmp_path, testdata):
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "from_file" base_path: '
                      f'"{testdata / "saved_model_half_plus_two_cpu"}" model_platform: "tensorflow" }} }}')
    options = cli.build_options(["--rest_api_port=8501", f"--model_config_file={config}", "--model_name=flag",
                                 f"--model_base_path={testdata / 'saved_model_half_plus_three'}"])
    assert [m.name for m in options.models] == ["from_file"]


@pytest.mark.parametrize("argv, needle", [
    (["--per_process_gpu_memory_fraction=1.5"], "expected a number from 0.0 to 1.0"),
    (["--rest_api_p=8"], "unrecognized arguments: --rest_api_p=8"),      # no abbreviations, as TF Serving
])
def test_checks_before_start(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_args([*BASE, *argv])
    assert e.value.code == 2 and needle in capsys.readouterr().err


def test_alts_with_tls_is_refused_as_tf_serving_refuses_it(capsys):
    # tensorflow_model_server: Server::BuildAndStart's error, printed on stdout by main.cc, exit status 255.
    with pytest.raises(SystemExit) as e:
        cli.parse_args([*BASE, "--use_alts_credentials", "--ssl_config_file=s.txt"])
    assert e.value.code == 255
    assert capsys.readouterr().out == ("Failed to start server. Error: INVALID_ARGUMENT: Either use_alts_credentials "
                                       "must be false or ssl_config_file must be empty.\n")


def test_thread_flags_are_not_checked_when_a_platform_config_file_replaces_them():
    # tensorflow_model_server reads none of the three when --platform_config_file is given.
    args, _ = cli.parse_args([*BASE, "--tensorflow_session_parallelism=2", "--tensorflow_intra_op_parallelism=2",
                              "--tensorflow_inter_op_parallelism=2", "--platform_config_file=p.txt"])
    assert args.platform_config_file == "p.txt"


def test_no_rest_port_serves_grpc_alone(capsys):
    args, _ = cli.parse_args(["--model_base_path=/models/m"])       # gRPC on 8500 alone, as TF Serving
    assert args.rest_api_port == 0 and args.port == 8500
    with pytest.raises(SystemExit):
        cli.parse_args(["--model_base_path=/models/m", "--port=0"])
    assert "At least one of --port, --grpc_socket_path or --rest_api_port must be set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args(["--model_base_path=/models/m", "--port=8501", "--rest_api_port=8501"])
    assert "--rest_api_port cannot be the same as --port" in capsys.readouterr().err


def test_flags_that_change_nothing_yet_are_named_in_one_warning_each(caplog):
    caplog.set_level(logging.WARNING, logger="server")
    idle = sorted(flags.NOT_HONOURED)[:2]
    given = frozenset({"port", "enable_profiler", "max_num_load_retries", "model_name", "use_alts_credentials", *idle})
    lines = cli.warn_not_honoured(given)
    # --port, the other gRPC flags, the profiler and ALTS credentials are served; the rest is named.
    assert [line.split()[0] for line in lines] == [f"--{name}" for name in idle]
    assert [r.getMessage() for r in caplog.records] == lines
    assert all("is accepted but has no effect in this server yet" in line for line in lines)
    assert set(flags.NOT_HONOURED) <= set(flags.tf_flag_names())


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "server", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_bad_model_config_file_exits_with_tf_servings_message(testdata):
    r = run_cli("--rest_api_port=8501", f"--model_config_file={testdata / 'bad_model_config.txt'}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert ("Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type "
            '"tensorflow.serving.ModelServerConfig" has no field named "improperly".') in r.stderr


@pytest.mark.slow
def test_without_rest_one_worker_serves_in_process_until_sigterm(testdata, tmp_path):
    # --rest_api_port=0 serves gRPC in-process.
    code = "import sys; from server import cli; sys.exit(cli.main(sys.argv[1:]))"
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, "--port=0", f"--grpc_socket_path={tmp_path / 'sock'}",
                                 "--model_name=m", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while "Successfully loaded servable version m 123" not in log.read_text(errors="replace"):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
        finally:
            code = stop_group(proc, timeout=30)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "Serving without a REST API (--rest_api_port=0)" in text and "Unloaded servable version m 123" in text


@pytest.mark.slow
@pytest.mark.parametrize("flag, text, message", [
    ("platform_config_file", "platform_configs { key: 'tensorflow' value { source_adapter_config { "
     "[type.googleapis.com/tensorflow.ConfigProto] { } } } }",
     "Couldn't find factory for config proto message type tensorflow.ConfigProto"),
    ("platform_config_file", "platform_configs { key: 'tensorflow' valu { } }",
     "Error parsing text-format tensorflow.serving.PlatformConfigMap: 1:38: Message type "
     '"tensorflow.serving.PlatformConfigMap.PlatformConfigsEntry" has no field named "valu".'),
    ("thread_pool_factory_config_file", "", "Supplied config's type_url could not be parsed: "),
])
def test_platform_and_thread_pool_files_that_tf_serving_refuses_stop_the_server(testdata, tmp_path, flag, text,
                                                                                 message):
    path = tmp_path / "config.txt"
    path.write_text(text)
    r = run_cli("--rest_api_port=8501", "--port=0", "--model_name=m",
                f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}", f"--{flag}={path}")
    # As tensorflow_model_server (Server::BuildAndStart, main.cc): on stdout, exit status 255.
    assert r.returncode == 255 and "Traceback" not in r.stderr, r.stderr[-2000:]
    prefix = f"Invalid protobuf file: '{path}': " if message.startswith("Error parsing") else ""
    assert r.stdout.startswith(f"Failed to start server. Error: INVALID_ARGUMENT: {prefix}{message}"), r.stdout
