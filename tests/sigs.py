"""Signature objects built from SignatureDef protos, for tests that need no SavedModel."""
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from server.signatures import Signature


def make_signature(inputs, outputs=("y",), name="serving_default", defaults=()):
    """inputs: {key: (dtype, shape)}, shape None = unknown rank; outputs: float keys; defaults: input keys
    that get a default value in the SignatureDef."""
    proto = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for key, (dtype, shape) in inputs.items():
        info = proto.inputs[key]
        info.name, info.dtype = key + ":0", dtype
        if shape is None:
            info.tensor_shape.unknown_rank = True
        else:
            for d in shape:
                info.tensor_shape.dim.add(size=d)
    for key in outputs:
        proto.outputs[key].name, proto.outputs[key].dtype = key + ":0", types_pb2.DT_FLOAT
    for key in defaults:
        proto.defaults[key].CopyFrom(tensor_pb2.TensorProto(dtype=inputs[key][0]))
    return Signature.from_proto(name, proto)
