"""server/platform_config.py: --platform_config_file's PlatformConfigMap, its `tensorflow` platform's
SessionBundleConfig read into plain settings (how they reach the Options, the loader and the worker:
test_options, test_servable, test_worker)."""
import pytest
import requests

from server.config import ConfigError
from server.platform_config import SessionBundleSettings, read_platform_config

from .serverproc import ServerProcess

ADAPTER = "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig]"


def platform_file(tmp_path, entries: dict[str, str]):
    """A PlatformConfigMap text file: {platform: legacy_config text}."""
    path = tmp_path / "platform.txt"
    path.write_text("".join(f"platform_configs {{ key: '{name}' value {{ source_adapter_config {{ {ADAPTER} {{ "
                            f"legacy_config {{ {legacy} }} }} }} }} }}\n" for name, legacy in entries.items()))
    return path


def test_the_tensorflow_platforms_session_bundle_config_in_plain_values(tmp_path):
    path = platform_file(tmp_path, {"tensorflow": """
        session_target: "" session_config { intra_op_parallelism_threads: 4 }
        batching_parameters { max_batch_size { value: 16 } allowed_batch_sizes: 8 allowed_batch_sizes: 16 }
        enable_per_model_batching_params: true session_run_load_threadpool_index { value: 1 }
        num_tflite_interpreters: 3 num_tflite_interpreters_per_pool: 2 remove_unused_fields_from_bundle_metagraph: true
        experimental_transient_ram_bytes_during_load: 1000000 in_graph_batching_parameters { max_batch_size: 4 }""",
        "other": "mixed_precision: 'bfloat16'"})
    serialized, st = read_platform_config(str(path))
    from tensorflow.core.protobuf import config_pb2
    session = config_pb2.ConfigProto.FromString(st.session_config)
    assert session.intra_op_parallelism_threads == 4 and serialized
    assert st.batching_parameters.max_batch_size == 16 and st.batching_parameters.allowed_batch_sizes == (8, 16)
    assert st.enable_per_model_batching_params and st.session_run_load_threadpool_index == 1
    assert (st.num_tflite_pools, st.num_tflite_interpreters_per_pool) == (3, 2)   # the deprecated field as pools
    assert st.remove_unused_fields_from_bundle_metagraph and st.mixed_precision == ""  # the other platform's not
    assert (st.saved_model_tags, st.enable_model_warmup) == (("serve",), False)


def test_no_tensorflow_platform_and_checks_of_every_platform(tmp_path):
    assert read_platform_config(str(platform_file(tmp_path, {"other": ""})))[1] is None
    path = platform_file(tmp_path, {"tensorflow": "",
                                    "other": "batching_parameters { num_batch_threads { value: 0 } }"})
    with pytest.raises(ConfigError, match="num_batch_threads must be positive; was 0"):
        read_platform_config(str(path))
    assert SessionBundleSettings().batching_parameters is None


@pytest.mark.slow
def test_a_server_batches_with_the_files_parameters_and_answers_the_same(testdata, tmp_path):
    path = platform_file(tmp_path, {"tensorflow": """
        session_config { intra_op_parallelism_threads: 1 inter_op_parallelism_threads: 1 }
        batching_parameters { max_batch_size { value: 2 } batch_timeout_micros { value: 1000 } }"""})
    flags = ["--model_name=half", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
             f"--platform_config_file={path}", "--enable_batching=false"]
    with ServerProcess(flags) as server:
        server.wait_available("half")
        url = f"{server.url}/v1/models/half:predict"
        two = requests.post(url, json={"instances": [1.0, 2.0]}, timeout=30)
        assert two.status_code == 200 and two.json() == {"predictions": [2.5, 3.0]}
        # Batching is on with max_batch_size 2, although --enable_batching=false: a larger request is refused
        # as TF Serving's batching session refuses it.
        three = requests.post(url, json={"instances": [1.0, 2.0, 3.0]}, timeout=30)
        assert three.status_code == 400, three.text
        assert three.json() == {"error": "Task size 3 is larger than maximum input batch size 2"}
        server.wait_log("--platform_config_file replaces --enable_batching")
