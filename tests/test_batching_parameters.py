"""server/batching/parameters.py: TF Serving's batching parameters file."""
import pytest

from server.batching.parameters import BatchingConfigError, BatchingParameters, BatchingParametersProto


def test_parse_fixture_batching_config(testdata):
    p = BatchingParameters.from_file(testdata / "batching_config.txt")
    assert (p.max_batch_size, p.batch_timeout_micros, p.max_enqueued_batches, p.num_batch_threads) == (
        128, 0, 1000000, 8)
    assert p.allowed_batch_sizes == ()
    assert p.max_execution_batch_size == 128


def test_defaults_are_tf_servings():
    p = BatchingParameters.from_text("")
    assert p.max_batch_size == 1000
    assert p.batch_timeout_micros == 0
    assert p.max_enqueued_batches == 10
    assert p.num_batch_threads >= 1
    assert p.enable_large_batch_splitting is False


def test_all_fields_parse_and_round_trip():
    text = """
        max_batch_size { value: 64 }
        batch_timeout_micros { value: 2500 }
        max_enqueued_batches { value: 3 }
        num_batch_threads { value: 2 }
        thread_pool_name { value: "mlp_batch" }
        allowed_batch_sizes: 8
        allowed_batch_sizes: 32
        allowed_batch_sizes: 64
        enable_large_batch_splitting { value: true }
        max_execution_batch_size { value: 32 }
    """
    p = BatchingParameters.from_text(text)
    assert p.allowed_batch_sizes == (8, 32, 64)
    assert p.thread_pool_name == "mlp_batch"
    assert p.enable_large_batch_splitting and p.max_execution_batch_size == 32
    assert BatchingParameters.from_proto(p.to_proto()) == p


def test_message_mirrors_tf_serving_names_and_numbers():
    d = BatchingParametersProto.DESCRIPTOR
    assert d.full_name == "tensorflow.serving.BatchingParameters"
    numbers = {f.name: f.number for f in d.fields}
    assert numbers["max_batch_size"] == 1 and numbers["num_batch_threads"] == 4
    assert numbers["allowed_batch_sizes"] == 6 and numbers["pad_variable_length_inputs"] == 7
    assert d.fields_by_name["max_batch_size"].message_type.full_name == "google.protobuf.Int64Value"


@pytest.mark.parametrize("text, phrase", [
    ("max_batch_size { value: 128 } max_batch_sise { value: 1 }", 'has no field named "max_batch_sise"'),
    ("max_batch_size: 128", 'Expected "{"'),
    ("max_batch_size { value: 12", "Expected"),
    ('num_batch_threads { value: "two" }', "Couldn't parse integer"),
    ("max_batch_size { value: 128 } allowed_batch_sizes: 32 allowed_batch_sizes: 64",
     "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 64; expected 128"),
    ("max_batch_size { value: 64 } allowed_batch_sizes: 32 allowed_batch_sizes: 16 allowed_batch_sizes: 64",
     "monotonically increasing"),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be positive; was 0"),
    ("max_batch_size { value: 0 }", "max_batch_size must be positive; was 0"),
    ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be non-negative; was -1"),
    ("max_batch_size { value: 16 } enable_large_batch_splitting { value: true } max_execution_batch_size { value: 32 }",
     "input_batch_size_limit must be greater than or equal to max_execution_batch_size"),
    ("pad_variable_length_inputs: true", "pad_variable_length_inputs is not supported"),
])
def test_bad_files_are_refused_clearly(tmp_path, text, phrase):
    path = tmp_path / "batching.txt"
    path.write_text(text)
    with pytest.raises(BatchingConfigError) as e:
        BatchingParameters.from_file(path)
    assert phrase in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(BatchingConfigError, match="Cannot read batching parameters file"):
        BatchingParameters.from_file(tmp_path / "nope.txt")
