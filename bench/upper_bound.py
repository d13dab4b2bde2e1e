"""The in-process upper bound: the benchmark's request bodies parsed, run in the batches the server
would form, and formatted, in one loop in one process, with no HTTP at all.

Run by bench/run.py as a subprocess (so that TensorFlow never loads in the harness), which stays up
for the whole run and measures on demand, right after each measurement of a server, so that the two
numbers of a ratio are taken seconds apart, not at opposite ends of the run:

    python -m bench.upper_bound --model_base_path ABS

Each line on stdin asks for one measurement, {"body": file, "group": requests per model call,
"seconds": s, "transport": "rest" (a JSON body, the default) or "grpc" (a serialized PredictRequest)};
each answer is one line `UPPER_JSON {...}` (requests/s and which code path it used).
--intra_op/--inter_op load the model with the servers' TensorFlow thread settings.
It uses the server's own JSON codec (server.rest), input checks (server.validation) and model runner
(server.servable) when they are importable, so the bound measures exactly the work a server worker
cannot avoid.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _latest(base_path: str) -> tuple[int, str]:
    version = max(int(d) for d in os.listdir(base_path) if d.isdigit())
    return version, os.path.join(base_path, str(version))


class ServerPath:
    """The server's codec, checks and servable: parse_predict/decode_predict -> validate_inputs ->
    Servable.run -> encode_predict, the calls a REST predict makes (rest/handlers.py, dataplane.py)."""
    name = "server.rest + server.servable"

    def __init__(self, base_path: str, signature_name: str, intra_op: int = 0, inter_op: int = 0):
        from server import servable, validation
        from server.rest import predict_request, predict_response
        self.request, self.response, self.validate = predict_request, predict_response, validation.validate_inputs
        version, path = _latest(base_path)
        self.servable = servable.load_servable("MLP", version, path, tensorflow_intra_op_parallelism=intra_op,
                                               tensorflow_inter_op_parallelism=inter_op)
        self.signature = self.servable.get_signature(signature_name)

    def decode(self, body: bytes):
        doc = self.request.parse_predict(body)
        inputs, columnar = self.request.decode_predict(doc, self.signature)
        self.validate(inputs, self.signature)
        return inputs, columnar

    def run(self, inputs):
        return self.servable.run(self.signature, inputs)

    def encode(self, outputs, columnar) -> bytes:
        return self.response.encode_predict(outputs, columnar)


class GrpcPath:
    """The gRPC twin of ServerPath, on the same loaded servable: PredictRequest bytes -> tensor_proto ->
    validate_inputs -> Servable.run -> PredictResponse bytes, the calls a gRPC Predict makes
    (grpc/prediction_service.py, dataplane.py)."""
    name = "server.grpc + server.servable"

    def __init__(self, rest: ServerPath):
        from tensorflow_serving.apis import predict_pb2

        from server.grpc import prediction_service, tensor_proto
        self.rest, self.signature = rest, rest.signature
        self.request_type, self.response_type = predict_pb2.PredictRequest, predict_pb2.PredictResponse
        self.decode_inputs, self.write = prediction_service.decode_inputs, tensor_proto.write

    def decode(self, body: bytes):
        request = self.request_type.FromString(body)
        inputs = self.decode_inputs(request.inputs, self.signature)
        self.rest.validate(inputs, self.signature)
        return inputs, False

    def run(self, inputs):
        return self.rest.run(inputs)

    def encode(self, outputs, columnar) -> bytes:
        response = self.response_type()
        for key in sorted(outputs):
            self.write(outputs[key], response.outputs[key], False)
        return response.SerializeToString()


class PlainPath:
    """Fallback while server.rest is not there: orjson + np.asarray + the loaded signature."""
    name = "orjson + numpy + tf.saved_model.load (server.rest not available)"

    def __init__(self, base_path: str, signature_name: str):
        import orjson
        import tensorflow as tf
        self.orjson, self.tf = orjson, tf
        _, path = _latest(base_path)
        self.fn = tf.saved_model.load(path).signatures[signature_name]
        self.key = list(self.fn.structured_input_signature[1])[0]

    def decode(self, body: bytes):
        doc = self.orjson.loads(body)
        columnar = "inputs" in doc
        return {self.key: np.asarray(doc["inputs" if columnar else "instances"], dtype=np.float32)}, columnar

    def run(self, inputs):
        return {k: v.numpy() for k, v in self.fn(**{k: self.tf.constant(v) for k, v in inputs.items()}).items()}

    def encode(self, outputs, columnar) -> bytes:
        y = next(iter(outputs.values())).tolist()
        return self.orjson.dumps({"outputs": y} if columnar else {"predictions": y})


def measure(path, body: bytes, group: int, seconds: float) -> dict:
    bodies = [body] * group

    def one_round():
        decoded = [path.decode(b) for b in bodies]
        columnar = decoded[0][1]
        if group == 1:
            outs = [path.run(decoded[0][0])]
        else:
            keys = decoded[0][0].keys()
            merged = {k: np.concatenate([d[0][k] for d in decoded]) for k in keys}
            result = path.run(merged)
            outs, offset = [], 0
            for d in decoded:
                n = next(iter(d[0].values())).shape[0]
                outs.append({k: v[offset:offset + n] for k, v in result.items()})
                offset += n
        return [path.encode(o, columnar) for o in outs]

    for _ in range(3):
        one_round()                      # warm-up (first calls trace/allocate)
    n_rounds, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    deadline = t0 + seconds
    while True:
        one_round()
        n_rounds += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - t0
    return {"requests_per_s": n_rounds * group / elapsed, "seconds": elapsed, "requests": n_rounds * group,
            "cpu_s": time.process_time() - cpu0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_base_path", required=True)
    parser.add_argument("--signature_name", default="call")
    parser.add_argument("--intra_op", type=int, default=0, help="as --tensorflow_intra_op_parallelism")
    parser.add_argument("--inter_op", type=int, default=0, help="as --tensorflow_inter_op_parallelism")
    args = parser.parse_args()
    try:
        path = ServerPath(args.model_base_path, args.signature_name, args.intra_op, args.inter_op)
    except ImportError:
        path = PlainPath(args.model_base_path, args.signature_name)
    paths = {"rest": path}
    if isinstance(path, ServerPath):
        paths["grpc"] = GrpcPath(path)
    gc.collect()
    gc.freeze()                          # TensorFlow's objects are never collected: stop scanning them
    print("UPPER_READY", flush=True)
    bodies: dict[str, bytes] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        item = json.loads(line)
        if item["body"] not in bodies:
            with open(item["body"], "rb") as f:
                bodies[item["body"]] = f.read()
        # "transport": "grpc" measures a serialized PredictRequest (the body of a gRPC call) the gRPC way.
        chosen = paths[item.get("transport", "rest")]
        result = measure(chosen, bodies[item["body"]], item["group"], item["seconds"])
        print("UPPER_JSON " + json.dumps({"path": chosen.name, **result}), flush=True)


if __name__ == "__main__":
    main()
