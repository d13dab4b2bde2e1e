"""server/servable_api.py: the three kinds of loaded version declare one interface (the type checker checks
their methods against it in `make lint`), and what load_servable returns has it."""
import numpy as np

from server.function_servable import FunctionServable
from server.servable import Servable, load_servable
from server.servable_api import ServableLike
from server.tflite_servable import TfLiteServable


def test_every_servable_class_declares_the_interface():
    for cls in (Servable, FunctionServable, TfLiteServable):
        assert ServableLike in cls.__mro__, cls   # declared, not only matched
    assert {Servable.kind, FunctionServable.kind, TfLiteServable.kind} == {"session", "object_graph", "tflite"}


def test_loaded_versions_have_it(testdata):
    for name, prefer in (("saved_model_half_plus_two_cpu", False), ("saved_model_half_plus_two_tflite", True)):
        s = load_servable("m", 123, str(testdata / name / "00000123"), prefer_tflite_model=prefer)
        try:
            assert isinstance(s, ServableLike) and s.kind == ("tflite" if prefer else "session")
            assert (s.name, s.version) == ("m", 123) and "serving_default" in s.signatures
            out = s.run(s.get_signature("serving_default"), {"x": np.array([[1.0], [2.0]], np.float32)})
            np.testing.assert_allclose(np.ravel(out["y"]), [2.5, 3.0])
        finally:
            s.unload()
