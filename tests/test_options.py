"""server/options.py: one frozen Options built from the flags, every file they name read once."""
import dataclasses
import os
import stat

import pytest

from server import cli, flags
from server.config import ConfigError
from server.options import Options, remove_settings_file
from server.servable import session_config

CPUS = os.cpu_count() or 1


def options(*argv, check_paths=False):
    return cli.build_options(["--rest_api_port=8501", "--model_base_path=/models/m", *argv], check_paths=check_paths)


# tensorflow_model_server's defaults (model_servers/server.h, Server::Options; main.cc) for the flags
# whose default this server shares.
TF_DEFAULTS = dict(
    port=8500, grpc_socket_path="", grpc_channel_arguments="", grpc_max_threads=4 * CPUS,
    enable_grpc_healthcheck_service=False, ssl_config_file="", use_alts_credentials=False,
    enable_serialization_as_tensor_content=False, rest_api_timeout_in_ms=30000,
    rest_api_enable_cors_support=False, model_name="default", model_config_file="",
    model_config_file_poll_wait_seconds=0, file_system_poll_wait_seconds=1,
    allow_version_labels_for_unavailable_models=False, saved_model_tags=("serve",), platform_config_file="",
    num_load_threads=0, num_unload_threads=0, max_num_load_retries=5, load_retry_interval_micros=60_000_000,
    flush_filesystem_caches=True, enable_model_warmup=True, num_request_iterations_for_warmup=0,
    enable_batching=False, batching_parameters_file="", enable_per_model_batching_parameters=False,
    tensorflow_session_parallelism=0, tensorflow_intra_op_parallelism=0, tensorflow_inter_op_parallelism=0,
    tensorflow_session_config_file="", per_process_gpu_memory_fraction=0.0, xla_cpu_compilation_enabled=False,
    xla_gpu_compilation_enabled=False, mixed_precision="", remove_unused_fields_from_bundle_metagraph=True,
    enable_signature_method_name_check=False, prefer_tflite_model=False, num_tflite_pools=CPUS,
    num_tflite_interpreters_per_pool=1, thread_pool_factory_config_file="", enable_profiler=True,
    skip_initialize_tpu=False, monitoring_config_file="",
)


def test_defaults_are_tensorflow_model_servers():
    opts = options()
    assert {k: getattr(opts, k) for k in TF_DEFAULTS} == TF_DEFAULTS
    # Where this server differs (documented in --help and docs/flags.rst): 1 REST thread, measured.
    assert opts.rest_api_num_threads == 1 and flags.BY_NAME["rest_api_num_threads"].tf_default == "4 x CPUs"


def test_every_tensorflow_model_server_flag_is_an_options_field():
    names = flags.tf_flag_names()
    assert len(names) == 48 and len(set(names)) == 48
    fields = {f.name for f in dataclasses.fields(Options)}
    assert set(names) - {"version"} <= fields


def test_options_are_frozen_and_travel_to_the_workers_in_a_private_file():
    opts = options("--enable_batching", "--port=0", "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,a=b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.port = 1
    path = opts.write_settings_file()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert Options.read_settings_file(path) == opts
    finally:
        remove_settings_file(path)
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    remove_settings_file(path)   # twice: nothing to do
    assert not opts.grpc_enabled and opts.rest_enabled


def test_derived_values():
    opts = options("--saved_model_tags=serve,gpu", "--enable_batching")
    assert opts.saved_model_tags == ("serve", "gpu") and opts.saved_model_tags == ("serve", "gpu")
    assert opts.rest_api_num_threads == 4 * CPUS              # batching wants requests waiting together
    assert opts.batching_parameters.max_batch_size == 1000    # TF Serving's defaults without a file
    assert opts.models[0].name == "default" and opts.models[0].base_path == "/models/m"
    assert opts.given_flags == {"rest_api_port", "model_base_path", "saved_model_tags", "enable_batching"}


def test_batching_file_implies_batching_and_is_read_once(testdata):
    opts = options(f"--batching_parameters_file={testdata / 'batching_config.txt'}")
    assert opts.enable_batching and opts.batching_parameters.max_batch_size == 128


def test_monitoring_and_model_config_files_are_read(testdata, tmp_path):
    cfg = tmp_path / "models.config"
    cfg.write_text((testdata / "good_model_config.txt").read_text()
                   .replace("${TEST_HALF_PLUS_TWO_DIR}", str(testdata / "saved_model_half_plus_two_cpu"))
                   .replace("${TEST_HALF_PLUS_THREE_DIR}", str(testdata / "saved_model_half_plus_three")))
    opts = cli.build_options(["--rest_api_port=8501", f"--model_config_file={cfg}",
                              f"--monitoring_config_file={testdata / 'monitoring_config.txt'}"])
    assert [m.name for m in opts.models] == ["half_plus_two", "half_plus_three"]
    assert opts.prometheus.enable and opts.prometheus.path == "/monitoring/prometheus/metrics"


def test_ssl_and_session_files(tmp_path):
    ssl = tmp_path / "ssl.txt"
    ssl.write_text("server_key: 'KEY' server_cert: 'CERT' client_verify: true")
    session = tmp_path / "session.txt"
    session.write_text("intra_op_parallelism_threads: 3 allow_soft_placement: true")
    opts = options(f"--ssl_config_file={ssl}", f"--tensorflow_session_config_file={session}")
    assert (opts.ssl_config.server_key, opts.ssl_config.server_cert, opts.ssl_config.client_verify) == (
        "KEY", "CERT", True)
    config = session_config(opts)
    assert config.allow_soft_placement and config.intra_op_parallelism_threads == 0  # the flags win, as TF Serving
    assert opts.platform_config == b"" and opts.thread_pool_factory_config == b"" and opts.platform is None
    bad = tmp_path / "bad_ssl.txt"
    bad.write_text("server_kee: 'x'")
    with pytest.raises(ConfigError, match=r"Error parsing text-format tensorflow.serving.SSLConfig: 1:1: "):
        options(f"--ssl_config_file={bad}")
    with pytest.raises(ConfigError, match=r"Cannot read SSL config \(--ssl_config_file\) file 'x'"):
        options("--ssl_config_file=x")


def test_session_config_follows_tf_servings_thread_rules():
    def threads(**kw):
        c = session_config(Options(**kw))
        return c.intra_op_parallelism_threads, c.inter_op_parallelism_threads

    assert threads() == (0, 0)
    assert threads(tensorflow_session_parallelism=3) == (3, 3)
    assert threads(tensorflow_session_parallelism=3, tensorflow_intra_op_parallelism=1) == (1, 0)
    # a negative inter-op count: ops in the caller's thread
    assert threads(tensorflow_intra_op_parallelism=1, tensorflow_inter_op_parallelism=-1) == (1, -1)
    assert session_config(Options(per_process_gpu_memory_fraction=0.5)) \
        .gpu_options.per_process_gpu_memory_fraction == 0.5


PLATFORM = """platform_configs {
  key: "tensorflow"
  value {
    source_adapter_config {
      [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] {
        legacy_config { %s }
      }
    }
  }
}
"""


def test_platform_config_file_replaces_the_flags_it_covers(tmp_path, caplog):
    platform = tmp_path / "platform.txt"
    platform.write_text(PLATFORM % """
        session_config { intra_op_parallelism_threads: 2 inter_op_parallelism_threads: 3 }
        batching_parameters { max_batch_size { value: 8 } batch_timeout_micros { value: 500 } }
        saved_model_tags: "serve" saved_model_tags: "gpu"
        enable_model_warmup: true model_warmup_options { num_request_iterations { value: 4 } }
        prefer_tflite_model: true num_tflite_pools: 3 mixed_precision: "bfloat16"
        session_target: "" enable_session_metadata: true""")
    opts = options(f"--platform_config_file={platform}", "--tensorflow_intra_op_parallelism=7",
                   "--tensorflow_session_parallelism=5", "--saved_model_tags=other", "--enable_model_warmup=false")
    session = session_config(opts)
    assert (session.intra_op_parallelism_threads, session.inter_op_parallelism_threads) == (2, 3)
    assert opts.enable_batching and opts.batching_parameters.max_batch_size == 8
    assert opts.batching_parameters.batch_timeout_micros == 500
    assert opts.rest_api_num_threads == 4 * CPUS          # the default with batching on
    assert opts.saved_model_tags == ("serve", "gpu")
    assert (opts.enable_model_warmup, opts.num_request_iterations_for_warmup) == (True, 4)
    assert (opts.prefer_tflite_model, opts.num_tflite_pools, opts.mixed_precision) == (
        True, 3, "bfloat16")
    assert opts.platform.enable_session_metadata and opts.platform_config
    assert not opts.remove_unused_fields_from_bundle_metagraph   # the proto's default, not the flag's
    warned = [r.getMessage() for r in caplog.records if "--platform_config_file replaces" in r.getMessage()]
    assert warned and all(f"--{n}" in warned[0] for n in ("tensorflow_intra_op_parallelism", "saved_model_tags",
                                                           "tensorflow_session_parallelism", "enable_model_warmup"))


def test_platform_config_without_batching_turns_batching_off(tmp_path):
    platform = tmp_path / "platform.txt"
    platform.write_text(PLATFORM % "session_config { intra_op_parallelism_threads: 1 }")
    opts = options(f"--platform_config_file={platform}", "--enable_batching")
    assert not opts.enable_batching and opts.batching_parameters is None
    assert not opts.enable_model_warmup            # the proto's default: off
    assert opts.saved_model_tags == ("serve",)     # none given: serve
    # TF Serving wraps the session to ignore thread pool options instead of batching it.
    platform.write_text(PLATFORM % "batching_parameters { max_batch_size { value: 4 } } "
                                   "wrap_session_with_no_threading_params: true")
    assert not options(f"--platform_config_file={platform}").enable_batching


@pytest.mark.parametrize("text, message", [
    ("platform_configs { key: 'tensorflow' value { } }", "Supplied config's type_url could not be parsed: "),
    ("platform_configs { key: 'tensorflow' value { source_adapter_config { "
     "[type.googleapis.com/tensorflow.ConfigProto] { intra_op_parallelism_threads: 1 } } } }",
     "Couldn't find factory for config proto message type tensorflow.ConfigProto\nconfig="
     "intra_op_parallelism_threads: 1\n"),
    ("platform_configs { key: 'tensorflow' value { source_adapter_config { type_url: "
     "'type.googleapis.com/my.Adapter' } } }", "Unable to find compiled-in proto descriptor of type my.Adapter"),
    ("platform_configs { key: 'tensorflow' value { source_adapter_config { "
     "[type.googleapis.com/my.Adapter] { } } } }",
     "Error parsing text-format tensorflow.serving.PlatformConfigMap: "
     'Could not find type "type.googleapis.com/my.Adapter" stored in google.protobuf.Any.'),
    ("platform_configs { key: 'tensorflow' value { source_adapter_config { "
     "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { legacy_config { "
     "batching_parameters { max_batch_size { value: 0 } } } } } } }", "max_batch_size must be positive; was 0"),
    ("platform_configs { key: 'tfrt' value { source_adapter_config { "
     "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { } } } }",
     "Model m requests unsupported platform tensorflow"),
    ("platform_config { }", "Error parsing text-format tensorflow.serving.PlatformConfigMap: 1:1: Message type "
     '"tensorflow.serving.PlatformConfigMap" has no field named "platform_config".'),
])
def test_platform_config_file_refused_with_tf_servings_message(tmp_path, text, message):
    platform = tmp_path / "platform.txt"
    platform.write_text(text)
    with pytest.raises(ConfigError) as e:
        options("--model_name=m", f"--platform_config_file={platform}")
    assert message in e.value.message


@pytest.mark.parametrize("text, message", [
    ("", "Supplied config's type_url could not be parsed: "),
    ("thread_pool_factory_config { [type.googleapis.com/tensorflow.ThreadPoolOptionProto] { num_threads: 2 } }",
     "Couldn't find factory for config proto message type tensorflow.ThreadPoolOptionProto\nconfig=num_threads: 2\n"),
    ("thread_pool_factory_config { type_url: 'type.googleapis.com/test.FakeThreadPoolFactoryConfig' }",
     "Unable to find compiled-in proto descriptor of type test.FakeThreadPoolFactoryConfig"),
    ("thread_pool_factory_config { type_url: 'type.googleapis.com/tensorflow.ThreadPoolOptionProto' value: '\\377' }",
     "Malformed content of Any: "),
    ("thread_pool_factory { }", "Error parsing text-format tensorflow.serving.ThreadPoolFactoryConfig: 1:1: "
     'Message type "tensorflow.serving.ThreadPoolFactoryConfig" has no field named "thread_pool_factory".'),
])
def test_thread_pool_factory_config_file_ends_in_tf_servings_registry_error(tmp_path, text, message):
    # Open-source tensorflow_model_server registers no ThreadPoolFactory: every file stops it.
    pool = tmp_path / "pool.txt"
    pool.write_text(text)
    with pytest.raises(ConfigError) as e:
        options(f"--thread_pool_factory_config_file={pool}")
    assert message in e.value.message
