"""server/tf_status.py: TensorFlow's exceptions as ServingErrors."""
import tensorflow as tf

from server.errors import ServingError
from server.tf_status import clean_tf_message, error_from_exception


def test_session_and_eager_messages_are_cleaned():
    assert clean_tf_message("Matrix size-incompatible: In[0]: [2,5], In[1]: [3,1]\n\t [[{{node z}}]]") == (
        "Matrix size-incompatible: In[0]: [2,5], In[1]: [3,1]")
    eager = ("Graph execution error:\n\nDetected at node StatefulPartitionedCall/d/BiasAdd defined at (most recent "
             "call last):\n<stack traces unavailable>\nMatrix size-incompatible: In[0]: [2,4], In[1]: [3,2]\n"
             "\t [[{{node StatefulPartitionedCall/d/BiasAdd}}]] [Op:__inference_signature_wrapper_103]")
    assert clean_tf_message(eager) == "Matrix size-incompatible: In[0]: [2,4], In[1]: [3,2]"
    assert clean_tf_message("cannot compute f as input #0 was expected to be a float tensor but is a int32 "
                            "tensor [Op:__inference_f_1]") == (
        "cannot compute f as input #0 was expected to be a float tensor but is a int32 tensor")


def test_codes_follow_tensorflow():
    e = error_from_exception(tf.errors.FailedPreconditionError(None, None, "Could not find variable v"), "")
    assert (e.code, e.message) == ("FAILED_PRECONDITION", "Could not find variable v")
    assert error_from_exception(tf.errors.DeadlineExceededError(None, None, "late"), "run: ").message == "run: late"
    assert error_from_exception(ValueError("bad"), "").code == "INVALID_ARGUMENT"
    assert error_from_exception(RuntimeError("x"), "").message == "RuntimeError: x"
    same = ServingError("NOT_FOUND", "gone")
    assert error_from_exception(same, "ignored: ") is same
