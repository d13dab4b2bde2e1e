"""server/flags.py: every tensorflow_model_server flag, and docs/flags.rst's table of them, checked against
`python -m server --help` so that the two cannot drift apart."""
import os
import re
import subprocess
import sys

import pytest

from server import flags

from .serverproc import ROOT

TABLE = ROOT / "docs" / "flags.rst"

# tensorflow_model_server's flags at tensorflow/serving HEAD (model_servers/main.cc), in main.cc's order.
MAIN_CC_FLAGS = """port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms
rest_api_enable_cors_support enable_batching allow_version_labels_for_unavailable_models batching_parameters_file
enable_per_model_batching_parameters model_config_file model_config_file_poll_wait_seconds model_name
model_base_path num_load_threads num_unload_threads max_num_load_retries load_retry_interval_micros
file_system_poll_wait_seconds flush_filesystem_caches tensorflow_session_parallelism tensorflow_session_config_file
tensorflow_intra_op_parallelism tensorflow_inter_op_parallelism use_alts_credentials ssl_config_file
platform_config_file per_process_gpu_memory_fraction saved_model_tags grpc_channel_arguments grpc_max_threads
enable_model_warmup num_request_iterations_for_warmup version monitoring_config_file
remove_unused_fields_from_bundle_metagraph prefer_tflite_model num_tflite_pools num_tflite_interpreters_per_pool
enable_signature_method_name_check xla_cpu_compilation_enabled xla_gpu_compilation_enabled enable_profiler
thread_pool_factory_config_file mixed_precision skip_initialize_tpu enable_grpc_healthcheck_service
enable_serialization_as_tensor_content""".split()


def help_defaults(help_text: str) -> dict[str, tuple[str, str]]:
    """{flag: (default here, default of tensorflow_model_server)} from the tensorflow_model_server section."""
    section = help_text.split("tensorflow_model_server flags:", 1)[1].split("flags of this server", 1)[0]
    text = " ".join(section.split())
    return {m.group(1): (m.group(3), m.group(4) or m.group(3))
            for m in re.finditer(r"(?:^| )--(\w+)(?: [A-Z]+| \[BOOL\])? (.*?)\[default: ([^;\]]*)"
                                 r"(?:; tensorflow_model_server: ([^\]]*))?\]", text)}


def table_rows(text: str) -> dict[str, tuple[str, str, str]]:
    """{flag: (default there, default here, what it does here)} from docs/flags.rst's list-table."""
    rows = re.findall(r"^   \* - ``--(\w+)``\n     - ``(.*?)``\n     - ``(.*?)``\n     - (.+)$", text, flags=re.M)
    return {name: (tf, here, meaning) for name, tf, here, meaning in rows}


@pytest.fixture(scope="module")
def help_text():
    return subprocess.run([sys.executable, "-m", "server", "--help"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "100"}, timeout=60).stdout


def test_all_48_flags_of_main_cc(help_text):
    assert len(MAIN_CC_FLAGS) == 48
    assert sorted(flags.tf_flag_names()) == sorted(MAIN_CC_FLAGS)
    assert sorted(help_defaults(help_text)) == sorted(MAIN_CC_FLAGS)


def test_docs_table_matches_help(help_text):
    rows = table_rows(TABLE.read_text(encoding="utf-8"))
    defaults = help_defaults(help_text)
    assert list(rows) == flags.tf_flag_names(), "the table lists the flags in --help's order"
    for name, (tf, here, meaning) in rows.items():
        assert (here, tf) == defaults[name], f"--{name}: the table says here {here!r}, there {tf!r}"
        # A flag that is accepted but changes nothing yet is said to do nothing, in the table as in the log.
        assert ("暂无作用" in meaning) == (name in flags.NOT_HONOURED), f"--{name}: {meaning}"


def test_own_flags_are_in_help_and_named_in_the_docs(help_text):
    parser = flags.build_parser()
    group = next(g for g in parser._action_groups if g.title.startswith("flags of this server"))
    own = [a.option_strings[0][2:] for a in group._group_actions]
    assert "batching_queue_timeout_in_ms" in own
    docs = TABLE.read_text(encoding="utf-8")
    for name in own:
        assert f"--{name}" in help_text, name
        assert f"``--{name}``" in docs, f"docs/flags.rst does not name --{name}"


def test_the_batching_queue_bound_reaches_the_core():
    from server.options import Options
    from server.worker import make_dataplane
    args = flags.build_parser().parse_args(["--batching_queue_timeout_in_ms=250", "--model_base_path=/models/m"])
    opts = Options.from_args(args, check_paths=False)
    assert opts.batching_queue_timeout_in_ms == 250
    assert make_dataplane(None, None, opts)._queue_timeout == 0.25
    assert make_dataplane(None, None, Options())._queue_timeout is None
    with pytest.raises(SystemExit):
        flags.build_parser().parse_args(["--batching_queue_timeout_in_ms=-1"])


def test_docs_table_defaults_are_the_flag_tables():
    """docs/flags.rst's two default columns against flags.FLAGS itself (the one place defaults are written)."""
    rows = table_rows(TABLE.read_text(encoding="utf-8"))
    for flag in flags.FLAGS:
        if flag.own:
            continue
        tf, here, _ = rows[flag.name]
        assert here == flag.shown_default(), f"--{flag.name}: docs/flags.rst says {here!r}, the table {flag}"
        assert tf == (flag.tf_default or flag.shown_default()), f"--{flag.name}: tensorflow_model_server's default"


def test_options_fields_are_made_from_the_table():
    """Every row is an Options field of its type whose default is the row's (None: decided from other flags)."""
    import dataclasses

    from server.options import Options
    fields = {f.name: f for f in dataclasses.fields(Options)}
    defaults = Options()
    for flag in flags.FLAGS:
        assert fields[flag.name].type in (flag.field_type(), flag.field_type().__name__), flag.name
        if flag.default is not None:
            assert getattr(defaults, flag.name) == flag.default, flag.name
    parsed = flags.build_parser().parse_args([])
    assert all(getattr(parsed, f.name) == f.default for f in flags.FLAGS), "the parser's defaults are the table's"
    assert defaults.rest_api_num_threads == 1 and defaults.replace(rest_api_num_threads=None,
                                                                   enable_batching=True).rest_api_num_threads \
        == 4 * flags.CPUS
