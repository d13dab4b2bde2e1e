"""server/servable.py: loading SavedModels like TF Serving, running signatures, refusing what cannot run."""
import concurrent.futures
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from server import errors
from server.options import Options
from server.servable import load_servable, session_config
from server.validation import validate_inputs


def export_tf1(path, build):
    """Export a TF1-style SavedModel whose serving_default signature `build(graph)` returns (inputs, outputs)."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        inputs, outputs = build()
        sess.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(path))
        sig = tf.compat.v1.saved_model.predict_signature_def(inputs, outputs)
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
        builder.save()


def slow_model():
    """y = x after a loop of n iterations: as slow as the request asks."""
    x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
    n = tf.compat.v1.placeholder_with_default(tf.constant(10, tf.int64), [], name="n")
    _, y = tf.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v), (tf.constant(0, tf.int64), x))
    return {"x": x, "n": n}, {"y": tf.identity(y, name="y")}


def test_fixture_loads_and_runs(testdata):
    s = load_servable("hpt", 123, str(testdata / "saved_model_half_plus_two_cpu" / "00000123"))
    try:
        sig = s.get_signature("serving_default")
        out = s.run(sig, {"x": np.array([[1.0], [3.0]], np.float32)})
        np.testing.assert_array_equal(out["y"], [[2.5], [3.5]])
    finally:
        s.unload()
    with pytest.raises(errors.ServingError) as e:
        s.run(sig, {"x": np.array([[1.0]], np.float32)})
    assert e.value.code == "UNAVAILABLE"


@pytest.mark.parametrize("intra,inter", [(1, 1), (1, -1), (2, 0)])
def test_thread_settings_give_the_same_answers(testdata, intra, inter):
    # inter < 0 runs every op in the calling thread (what `make bench` uses): same results, also from
    # several threads at once.
    s = load_servable("hpt", 123, str(testdata / "saved_model_half_plus_two_cpu" / "00000123"),
                      tensorflow_intra_op_parallelism=intra, tensorflow_inter_op_parallelism=inter)
    try:
        sig = s.get_signature("serving_default")
        xs = [np.full((3, 1), float(i), np.float32) for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda x: s.run(sig, {"x": x})["y"], xs * 20))
        for x, y in zip(xs * 20, outs):
            np.testing.assert_array_equal(y, x * 0.5 + 2.0)
    finally:
        s.unload()


def test_unknown_signature_is_tf_servings_message(testdata):
    s = load_servable("hpt", 123, str(testdata / "saved_model_half_plus_two_cpu" / "00000123"))
    with pytest.raises(errors.ServingError) as e:
        s.get_signature("nope")
    assert (e.value.code, e.value.message) == ("FAILED_PRECONDITION", 'Serving signature key "nope" not found.')
    s.unload()


def test_load_failures_carry_a_status_code(tmp_path, testdata):
    with pytest.raises(errors.ServingError) as e:
        load_servable("m", 1, str(tmp_path / "missing"))
    assert e.value.code == "NOT_FOUND"
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.ServingError) as e:
        load_servable("m", 1, str(tmp_path / "empty"))
    assert e.value.code == "NOT_FOUND" and e.value.message.startswith(
        "Specified file path does not appear to contain a SavedModel bundle (should have a file called "
        "`saved_model.pb`)")
    broken = tmp_path / "broken"
    shutil.copytree(testdata / "saved_model_half_plus_two_cpu" / "00000123", broken)
    (broken / "saved_model.pb").write_bytes((broken / "saved_model.pb").read_bytes()[:100])
    with pytest.raises(errors.ServingError):
        load_servable("m", 1, str(broken))


def test_half_plus_three_answers_as_tf_serving(testdata):
    # Its signature declares x as a scalar while the graph's x:0 is [?, 1]; TF Serving loads it anyway and
    # its integration test expects 4.0 for x = 2.0 sent as a tensor of shape [1]. So does this loader.
    s = load_servable("h3", 123, str(testdata / "saved_model_half_plus_three" / "00000123"))
    try:
        sig = s.get_signature("serving_default")
        inputs = {"x": np.array([2.0], np.float32)}
        validate_inputs(inputs, sig)
        np.testing.assert_array_equal(s.run(sig, inputs)["y"], [4.0])
        # its regress signature declares a float input whose tensor takes serialized examples (strings)
        regress = s.get_signature("tensorflow/serving/regress")
        assert regress.inputs["inputs"].model_dtype == types_pb2.DT_STRING
    finally:
        s.unload()


def test_placeholder_inputs_are_fed_whatever_their_shape(tmp_path):
    # TF Serving feeds a Placeholder whatever shape arrives; a model that takes it answers.
    export_tf1(tmp_path / "1", slow_model)
    s = load_servable("slow", 1, str(tmp_path / "1"))
    sig = s.get_signature("serving_default")
    out = s.run(sig, {"x": np.array([[1.0, 2.0]], np.float32), "n": np.array(3, np.int64)})
    np.testing.assert_array_equal(out["y"], [[1.0, 2.0]])
    s.unload()


def test_model_failure_names_the_input_its_declaration_and_what_arrived(tmp_path):
    def matmul():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        return {"x": x}, {"y": tf.matmul(x, tf.ones([3, 1]), name="y")}
    export_tf1(tmp_path / "1", matmul)
    s = load_servable("mm", 1, str(tmp_path / "1"))
    sig = s.get_signature("serving_default")
    with pytest.raises(errors.ServingError) as e:
        s.run(sig, {"x": np.ones((2, 5), np.float32)})
    assert e.value.code == "INVALID_ARGUMENT"
    assert e.value.message.startswith("Matrix size-incompatible: In[0]: [2,5], In[1]: [3,1] [Input 'x': ")
    assert "the signature declares float with shape [-1,3]: dimension 1 must be 3, got 5" in e.value.message
    np.testing.assert_array_equal(s.run(sig, {"x": np.ones((1, 3), np.float32)})["y"], [[3.0]])
    s.unload()


def test_signature_defaults_are_fed_for_inputs_left_out(tmp_path):
    export_tf1(tmp_path / "1", slow_model)
    pb = tmp_path / "1" / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    proto.meta_graphs[0].signature_def["serving_default"].defaults["n"].CopyFrom(
        tf.make_tensor_proto(np.int64(2)))
    pb.write_bytes(proto.SerializeToString())
    s = load_servable("slow", 1, str(tmp_path / "1"))
    sig = s.get_signature("serving_default")
    validate_inputs({"x": np.array([4.0], np.float32)}, sig)
    np.testing.assert_array_equal(s.run(sig, {"x": np.array([4.0], np.float32)})["y"], [4.0])
    s.unload()


def test_output_keys_fetch_only_those(testdata):
    s = load_servable("hpt", 123, str(testdata / "saved_model_half_plus_two_cpu" / "00000123"))
    sig = s.get_signature("serving_default")
    x = {"x": np.array([[1.0]], np.float32)}
    assert list(s.run(sig, x, output_keys=())) == list(s.run(sig, x)) == ["y"]  # none named: all, as TF Serving
    assert list(s.run(sig, x, output_keys=("y",))) == ["y"]
    s.unload()


def test_loader_options_object_and_keywords(testdata):
    path = str(testdata / "saved_model_half_plus_two_cpu" / "00000123")
    options = Options(tensorflow_intra_op_parallelism=1, tensorflow_inter_op_parallelism=1, mixed_precision="fp8")
    s = load_servable("hpt", 123, path, options, rest_api_timeout_in_ms=1000)
    try:
        assert set(s.signature_def_map()) >= {"serving_default", "regress_x_to_y"}
        assert not s._meta_graph.HasField("graph_def")  # only the SignatureDefs are kept
        assert s._run_options.timeout_in_ms == 1000
        np.testing.assert_array_equal(s.run(s.get_signature("serving_default"),
                                            {"x": np.array([[2.0]], np.float32)})["y"], [[3.0]])
    finally:
        s.unload()
    with pytest.raises(TypeError):
        load_servable("hpt", 123, path, no_such_flag=1)
    with pytest.raises(errors.ServingError) as e:
        load_servable("hpt", 123, path, saved_model_tags=("gpu",))
    assert "gpu" in e.value.message


def test_session_config_as_tf_serving_builds_it(caplog):
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    file_config = config_pb2.ConfigProto(intra_op_parallelism_threads=7, allow_soft_placement=True)
    proto = session_config(Options(session_config=file_config.SerializeToString(), tensorflow_session_parallelism=3))
    # the file's ConfigProto, then --tensorflow_session_parallelism for both pools
    assert proto.allow_soft_placement
    assert (proto.intra_op_parallelism_threads, proto.inter_op_parallelism_threads) == (3, 3)
    proto = session_config(Options(tensorflow_intra_op_parallelism=2, tensorflow_inter_op_parallelism=-1,
                                   tensorflow_session_parallelism=3))
    assert (proto.intra_op_parallelism_threads, proto.inter_op_parallelism_threads) == (2, -1)
    on = rewriter_config_pb2.RewriterConfig.ON
    rewrite = session_config(Options(mixed_precision="bfloat16")).graph_options.rewrite_options
    assert rewrite.auto_mixed_precision_onednn_bfloat16 == on
    with caplog.at_level("WARNING", logger="server.servable"):
        proto = session_config(Options(mixed_precision="fp16"))
    assert proto.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 != on
    assert "fp16 auto mixed precision is not supported. Valid option: bfloat16" in caplog.text


# -- SavedModels written by tf.saved_model.save from Keras 3 models -------------------------------

@pytest.fixture(scope="module")
def keras3_saved(tmp_path_factory):
    """A tiny Keras 3 model written with tf.saved_model.save (the handbook's 2019 export call)."""
    import keras
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.layers[-1].set_weights([np.arange(6, dtype=np.float32).reshape(3, 2), np.array([1.0, -1.0], np.float32)])
    path = tmp_path_factory.mktemp("keras3") / "1"
    tf.saved_model.save(model, str(path))
    return path, model


def test_keras3_saved_model_is_served_through_the_object_graph(keras3_saved, caplog):
    path, model = keras3_saved
    with caplog.at_level("WARNING", logger="server.servable"):
        s = load_servable("k3", 1, str(path))
    try:
        assert s.kind == "object_graph"
        (line,) = [r.getMessage() for r in caplog.records if "object-graph loader" in r.getMessage()]
        assert "cannot run in a TensorFlow session" in line and "dense/kernel" in line
        assert "serving_default" in s.signature_def_map()  # metadata from the MetaGraph, as TF Serving's
        sig = s.get_signature("serving_default")
        (key,) = sig.inputs
        x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
        validate_inputs({key: x}, sig)
        (out,) = s.run(sig, {key: x}).values()
        np.testing.assert_allclose(out, np.asarray(model(x)))
        np.testing.assert_allclose(out, [[17.0, 21.0], [1.0, -1.0]])
        with pytest.raises(errors.ServingError) as e:
            s.run(sig, {key: np.ones((1, 4), np.float32)})
        assert e.value.code == "INVALID_ARGUMENT" and f"Input '{key}': Expecting shape [-1,3] but got: [1,4]" in (
            e.value.message)
    finally:
        s.unload()
    with pytest.raises(errors.ServingError) as e:
        s.run(sig, {key: x})
    assert e.value.code == "UNAVAILABLE"


def test_keras3_saved_model_without_object_graph_never_becomes_available(keras3_saved, tmp_path):
    # The same export with its object graph stripped: neither loader can run it. The load fails with a
    # status that says what happened and how to re-export (a version that reported AVAILABLE would fail
    # every request with "Could not find variable").
    path, _ = keras3_saved
    broken = tmp_path / "1"
    shutil.copytree(path, broken)
    proto = saved_model_pb2.SavedModel.FromString((broken / "saved_model.pb").read_bytes())
    proto.meta_graphs[0].ClearField("object_graph_def")
    (broken / "saved_model.pb").write_bytes(proto.SerializeToString())
    with pytest.raises(errors.ServingError) as e:
        load_servable("k3", 1, str(broken))
    assert e.value.code == "FAILED_PRECONDITION"
    assert "cannot run in a TensorFlow session" in e.value.message and "model.export(" in e.value.message
    assert "ExportArchive" in e.value.message


def test_run_past_the_timeout_is_deadline_exceeded(tmp_path):
    # --rest_api_timeout_in_ms: TF Serving passes it as the session's RunOptions; a run past it is 504.
    export_tf1(tmp_path / "1", slow_model)
    s = load_servable("slow", 1, str(tmp_path / "1"), rest_api_timeout_in_ms=50)
    sig = s.get_signature("serving_default")
    with pytest.raises(errors.ServingError) as e:
        s.run(sig, {"x": np.array([1.0], np.float32), "n": np.array(10**10, np.int64)})
    assert e.value.code == "DEADLINE_EXCEEDED" and e.value.http_status == 504
    # ...and a quick run on the same servable still answers.
    out = s.run(sig, {"x": np.array([5.0], np.float32), "n": np.array(1, np.int64)})
    np.testing.assert_array_equal(out["y"], [5.0])
    s.unload()


def test_exports_whose_variables_a_session_restores_stay_in_a_session(tmp_path, keras3_saved):
    import keras
    import tensorflow as tf
    # TF Serving's own test_tf_saved_model_save: a tf.Module's variables are restored by the session loader.
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    signature = root.f.get_concrete_function(tf.TensorSpec(None, tf.float32))
    tf.saved_model.save(root, str(tmp_path / "module" / "1"), signature)
    s = load_servable("module", 1, str(tmp_path / "module" / "1"))
    try:
        assert s.kind == "session"
        out = s.run(s.get_signature("serving_default"), {"x": np.array([2.0], np.float32)})
        np.testing.assert_array_equal(out["y"], [12.0])
    finally:
        s.unload()
    # Keras 3's own export for serving (model.export) runs in a session, as in TF Serving.
    _, model = keras3_saved
    model.export(str(tmp_path / "exported" / "1"), verbose=False)
    s = load_servable("exported", 1, str(tmp_path / "exported" / "1"))
    try:
        assert s.kind == "session"
        sig = s.get_signature("serving_default")
        (key,) = sig.inputs
        (out,) = s.run(sig, {key: np.array([[1.0, 2.0, 3.0]], np.float32)}).values()
        np.testing.assert_allclose(out, [[17.0, 21.0]])
    finally:
        s.unload()
    assert keras.__version__.startswith("3.")


def platform_loader_options(tmp_path, legacy_config: str):
    """The Options of a --platform_config_file whose SessionBundleConfig is `legacy_config`."""
    from server import cli
    path = tmp_path / "platform.txt"
    path.write_text("platform_configs { key: 'tensorflow' value { source_adapter_config { "
                    "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { "
                    f"legacy_config {{ {legacy_config} }} }} }} }} }}")
    return cli.build_options(["--rest_api_port=8501", "--model_base_path=/models/m",
                              f"--platform_config_file={path}"], check_paths=False)


def test_platform_config_session_settings_reach_the_session(testdata, tmp_path):
    opts = platform_loader_options(tmp_path, "session_config { intra_op_parallelism_threads: 2 "
                                   "inter_op_parallelism_threads: 3 allow_soft_placement: true } "
                                   "enable_session_metadata: true")
    s = load_servable("half", 123, str(testdata / "saved_model_half_plus_two_cpu" / "00000123"), options=opts)
    try:
        config = s._session._config     # what the session was created with
        assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (2, 3)
        assert config.allow_soft_placement
        assert (config.experimental.session_metadata.name, config.experimental.session_metadata.version) == (
            "half", 123)
        out = s.run(s.get_signature("serving_default"), {"x": np.array([1.0, 2.0], np.float32)})
        np.testing.assert_allclose(out["y"], [2.5, 3.0])
        # metagraph fields beyond the signatures stay: remove_unused_fields_from_bundle_metagraph is off
        assert s._meta_graph.graph_def.node
    finally:
        s.unload()


def test_platform_config_load_thread_pool_index_runs_restore_and_init_there(testdata, tmp_path):
    path = str(testdata / "saved_model_half_plus_two_cpu" / "00000123")
    pools = "session_config { session_inter_op_thread_pool { num_threads: 1 } } "
    opts = platform_loader_options(tmp_path, pools + "session_run_load_threadpool_index { value: 0 }")
    s = load_servable("half", 123, path, options=opts)
    s.unload()
    # An index with no such pool: the restore op's run fails, so the load does (as in TF Serving).
    opts = platform_loader_options(tmp_path, pools + "session_run_load_threadpool_index { value: 4 }")
    with pytest.raises(errors.ServingError) as e:
        load_servable("half", 123, path, options=opts)
    assert e.value.code == "INVALID_ARGUMENT" and "Invalid inter_op_thread_pool: 4" in e.value.message


def test_platform_config_saved_model_config_is_unimplemented_as_in_open_source_tf_serving(testdata, tmp_path):
    opts = platform_loader_options(tmp_path, "enable_saved_model_config: true")
    with pytest.raises(errors.ServingError) as e:
        load_servable("half", 123, str(testdata / "saved_model_half_plus_two_cpu" / "00000123"), options=opts)
    assert (e.value.code, e.value.message) == ("UNIMPLEMENTED", "Saved model config functionality is not implemented.")
