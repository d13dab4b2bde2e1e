"""server/textproto.py: the one reader of the text-format protobuf files that the flags name."""
import pytest
from google.protobuf import wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from server import textproto
from server.config import ConfigError, read_config_file


def test_bad_model_config_fixture_gets_tf_servings_message(testdata):
    path = testdata / "bad_model_config.txt"
    with pytest.raises(textproto.TextProtoError) as e:
        textproto.read(path, model_server_config_pb2.ModelServerConfig(), "model config")
    assert str(e.value) == (f"Invalid protobuf file: '{path}': Error parsing text-format "
                            'tensorflow.serving.ModelServerConfig: 1:1: Message type '
                            '"tensorflow.serving.ModelServerConfig" has no field named "improperly".')
    with pytest.raises(ConfigError) as e:       # the same wording through the model config reader
        read_config_file(str(path))
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: " in e.value.message


def test_good_model_config_fixture_parses(testdata):
    text = (testdata / "good_model_config.txt").read_text()
    config = textproto.parse(text, model_server_config_pb2.ModelServerConfig(), "")
    assert [m.name for m in config.model_config_list.config] == ["half_plus_two", "half_plus_three"]


def test_line_and_column_of_a_syntax_error():
    with pytest.raises(ConfigError) as e:
        textproto.parse("model_config_list {\n  config { name: 'a' }\n  bad: 1\n}",
                        model_server_config_pb2.ModelServerConfig(), "P: ", ConfigError)
    assert e.value.message.startswith("P: Error parsing text-format tensorflow.serving.ModelServerConfig: 3:3: ")


def test_read_text_errors_name_the_file(tmp_path):
    with pytest.raises(textproto.TextProtoError, match=r"Cannot read SSL config file '/no/such': No such file"):
        textproto.read_text("/no/such", "SSL config")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"name: '\xe9'")
    with pytest.raises(ConfigError, match=r"Invalid protobuf file: '.*latin.txt': not UTF-8 text"):
        textproto.read_text(latin, "model config", ConfigError)


def test_message_classes_from_a_descriptor():
    classes = textproto.message_classes("t/x.proto", "t.pkg", {
        "Inner": [("n", 1, textproto.OPTIONAL, textproto.INT64, None)],
        "Outer": [("inner", 1, textproto.OPTIONAL, textproto.MESSAGE, ".t.pkg.Inner"),
                  ("tags", 2, textproto.REPEATED, textproto.STRING, None),
                  ("limit", 3, textproto.OPTIONAL, textproto.MESSAGE, ".google.protobuf.Int64Value")],
    }, dependencies=[wrappers_pb2.DESCRIPTOR])
    msg = textproto.parse("inner { n: 3 } tags: 'a' tags: 'b' limit { value: 7 }", classes["Outer"](), "")
    assert (msg.inner.n, list(msg.tags), msg.limit.value) == (3, ["a", "b"], 7)
    assert msg.DESCRIPTOR.full_name == "t.pkg.Outer"
    with pytest.raises(textproto.TextProtoError, match='Error parsing text-format t.pkg.Outer: 1:1: .*"nope"'):
        textproto.parse("nope: 1", classes["Outer"](), "")
