"""server/rest/fastjson.py: finding and reading a dense numeric JSON array straight from the bytes."""
import pytest

from server.rest import fastjson


@pytest.mark.parametrize("text,expected", [
    (b"[1]", ([1], (1,))),
    (b"[[1, 2.5], [-3e2, 0]]", ([1, 2.5, -300.0, 0], (2, 2))),
    (b"[ [ [ 1 ] ] ,\n [ [ 2 ] ] ]", ([1, 2], (2, 1, 1))),
    (b"[[1,2,3]]", ([1, 2, 3], (1, 3))),
    (b"[]", None), (b"[[]]", None), (b"[[1],[]]", None), (b"[[1,2],[3]]", None), (b"[1,[2]]", None),
    (b"[1[2]]", None), (b"[[1]2]", None), (b"[[1],1[]]", None), (b"[[1]]2", None), (b"[1 2]", None),
    (b'[1,"2"]', None), (b"[NaN]", None), (b"[1]]", None), (b"[[1]", None), (b"1", None), (b"", None),
])
def test_read_array(text, expected):
    assert fastjson.read_array(text) == expected


def test_regular_skeleton():
    assert fastjson.regular_skeleton((2, 2)) == b"[[,],[,]]"
    assert fastjson.regular_skeleton((3,)) == b"[,,]"
    assert fastjson.regular_skeleton((1, 2, 1)) == b"[[[],[]]]"


def test_find_array():
    body = b'{"signature_name": "instances", "instances" : [[1, 2]] , "x": 1}'
    start, end = fastjson.find_array(body, b"instances")
    assert body[start:end] == b"[[1, 2]]"
    assert fastjson.find_array(b'{"instances": 5}', b"instances") is None
    assert fastjson.find_array(b'{"inputs": [1]}', b"instances") is None
    start, end = fastjson.find_array(b'{"inputs": [1,\n2]\n}', b"inputs")
    assert (start, end) == (11, 17)


def test_same_float32():
    import numpy as np
    # float32 values (a float32 tensor's tolist()): always the same float32, whoever reads the text
    float32s = np.array([0.0, 1.0, -2.5, 1e-40, 3.4e38], np.float32).astype(np.float64)
    assert fastjson.same_float32(float32s)
    # a double a few ulps from a float32 midpoint: rapidjson's few-ulps error may round it either way
    one = np.float32(1.0)
    midpoint = (float(one) + float(np.nextafter(one, np.float32(2)))) / 2
    near = np.array([0.5, np.nextafter(midpoint, 2.0)])
    assert not fastjson.same_float32(near)
    # doubles far from any midpoint, though not float32 values: still the same float32
    assert fastjson.same_float32(np.array([0.1, 0.2, 1 / 3]))
    # a double in the subnormal range: refused (rapidjson's error is not a few ulps there)
    assert not fastjson.same_float32(np.array([1e-310]))
