"""server/rest/tf_example_json.py: classify/regress requests and results as TF Serving reads and writes them."""
import json
import math

import numpy as np
import pytest
from tensorflow.core.example import example_pb2

from server.errors import ServingError
from server.rest import predict_request, tf_example_json


def decode(body: str) -> list:
    out = []
    for s in tf_example_json.decode_examples(predict_request.parse_json(body.encode())):
        ex = example_pb2.Example()
        ex.ParseFromString(s)
        out.append(ex)
    return out


def features(ex):
    res = {}
    for name, f in ex.features.feature.items():
        kind = f.WhichOneof("kind")
        res[name] = (kind, list(getattr(f, kind).value) if kind else [])
    return res


def error(fn, *args):
    with pytest.raises(ServingError) as e:
        fn(*args)
    return e.value


def test_request_without_context():
    a, b = decode('{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},'
                  ' {"names": ["baz"], "ratings": 6.0}]}')
    assert features(a) == {"names": ("bytes_list", [b"foo", b"bar"]), "ratings": ("float_list", [8.0, 9.0]),
                           "age": ("int64_list", [20])}
    assert features(b) == {"names": ("bytes_list", [b"baz"]), "ratings": ("float_list", [6.0])}


def test_context_is_serialized_before_each_example():
    body = ('{"signature_name": "custom", "context": {"query": "pizza", "location": ["sfo"]}, "examples": ['
            '{"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},'
            '{"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0, "intboolmix": [1, true, false]},'
            '{"names": "bar", "ratings": -Infinity, "query": "override"}]}')
    doc = predict_request.parse_json(body.encode())
    serialized = tf_example_json.decode_examples(doc)
    context = example_pb2.Example()
    context.features.feature["query"].bytes_list.value.append(b"pizza")
    context.features.feature["location"].bytes_list.value.append(b"sfo")
    prefix = context.SerializeToString(deterministic=True)
    assert all(s.startswith(prefix) for s in serialized)
    a, b, c = decode(body)
    fa = features(a)
    assert fa["query"] == ("bytes_list", [b"pizza"]) and fa["location"] == ("bytes_list", [b"sfo"])
    assert fa["ratings"][1][:2] == [8.0, 9.0] and math.isnan(fa["ratings"][1][2]) and fa["ratings"][1][3] == math.inf
    assert features(b)["names"] == ("bytes_list", [b"baz", b"hello"])
    assert features(b)["intboolmix"] == ("int64_list", [1, 1, 0])
    # the example's own feature wins over the context's (protobuf merge of the concatenation)
    assert features(c)["query"] == ("bytes_list", [b"override"])
    assert features(c)["ratings"] == ("float_list", [-math.inf])


def test_empty_list_gives_an_empty_feature():
    (ex,) = decode('{"examples": [{"x": []}]}')
    assert features(ex) == {"x": (None, [])}


@pytest.mark.parametrize("body,message", [
    ('{"context": [{"names": ["foo", "bar"]}]}', "Example must be JSON object but got JSON Array"),
    ('{"examples": {"names": ["foo", "bar"]}}',
     'JSON Value: {\n    "examples": {\n        "names": [\n            "foo",\n            "bar"\n        ]\n'
     "    }\n} Expecting 'examples' value to be an list/array"),
    ('{"examples": [[{"names": ["foo", "bar"]}]]}', "Example must be JSON object but got JSON Array"),
    ('{"examples": [5]}', "Example must be JSON object but got JSON Number"),
    ('{"examples": [{"names": [10, null]}]}', "Feature: names has element with unexpected JSON type: Null"),
    ('{"examples": [{"names": [10, 10.0]}]}', "Unexpected element type in feature: names expecting type: int64"),
    ('{"examples": [{"names": ["a", 1]}]}', "Unexpected element type in feature: names expecting type: bytes"),
    ('{"examples": [{"names": [10, {"test": 10}]}]}', "Feature: names has element with unexpected JSON type: Object"),
    ('{"examples": [{"names": [[10], 20]}]}', "Feature: names has element with unexpected JSON type: Array"),
    ('{"examples": [{"names": [20, 18446744073709551603]}]}',
     "Feature: names has uint64_t element. Only int64_t is supported."),
    ('{"examples": [{"names": {"b64": "@@"}}]}', "Unable to base64 decode"),
    ('{"examples": []}', "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"),
    ('{"context": {"a": 1}}', 'JSON Value: {\n    "context": {\n        "a": 1\n    }\n} When method is classify, '
                              "key 'examples' is expected and was not found"),
])
def test_request_errors(body, message):
    e = error(tf_example_json.decode_examples, predict_request.parse_json(body.encode()))
    assert (e.code, e.message) == ("INVALID_ARGUMENT", message)


def test_signature_name_must_be_a_string():
    doc = predict_request.parse_json(b'{"signature_name": ["hello"], "examples": [{"a": 1}]}')
    e = error(predict_request.get_signature_name, doc)
    assert "'signature_name' key must be a string" in e.message


# ------------------------------------------------------------------ results

def test_fixture_answers_encode_exactly():
    # README: classify_x_to_y with x = 20.0 -> {"results": [[["", 12.0]]]}; regress x = 80.0 -> {"results": [42.0]}
    assert tf_example_json.encode_classify({"scores": np.array([[12.0]], np.float32)}) == (
        b'{\n    "results": [[["", 12.0]]\n    ]\n}')
    assert tf_example_json.encode_regress({"outputs": np.array([[42.0]], np.float32)}) == b'{\n    "results": [42.0]\n}'


def test_classification_result_labels_and_scores():
    out = tf_example_json.encode_classify({
        "classes": np.array([[b"car", b"bike", b"bus"], [b"car", b"bike", b"bus"]], dtype=object),
        "scores": np.array([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]], np.float32)})
    assert out == (b'{\n    "results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]], '
                   b'[["car", 0.7], ["bike", 0.1], ["bus", 0.2]]\n    ]\n}')
    only_classes = tf_example_json.encode_classify({"classes": np.array([[b"a", b"b"]], dtype=object)}, 1)
    assert json.loads(only_classes) == {"results": [[["a", 0.0], ["b", 0.0]]]}


def test_regression_with_non_finite_values():
    out = tf_example_json.encode_regress({"outputs": np.array([0.2, np.inf, 1.0, -np.inf, np.nan], np.float32)})
    assert out == b'{\n    "results": [0.2, Infinity, 1.0, -Infinity, NaN]\n}'
