"""What grpcio itself can serve: a PredictionService whose Predict answers at once with a fixed response.

`python -m bench.grpc_noop_server PORT RESPONSE_FILE [THREADS]` serves the official stubs' servicer on
127.0.0.1:PORT with grpcio's thread-pool server (THREADS threads, default 4 per CPU: the server's
--grpc_max_threads default), and answers every Predict with the PredictResponse read from RESPONSE_FILE
(this server's own answer to the same request, so the bytes sent back are the same). Nothing is decoded,
checked or run: bench/grpc_run.py loads it exactly as it loads the server, and the ratio of the two
rates says how much of a call's cost is the server's work and how much is grpcio's own.
Prints GRPC_NOOP_READY when it listens; stops on SIGTERM or when its standard input closes.
"""
from __future__ import annotations

import os
import pathlib
import sys
from concurrent import futures

import grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


class FixedAnswer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, response: predict_pb2.PredictResponse):
        self.response = response

    def Predict(self, request, context):
        return self.response


def main(argv: list[str]) -> int:
    port, response_file = int(argv[0]), pathlib.Path(argv[1])
    threads = int(argv[2]) if len(argv) > 2 else 4 * (os.cpu_count() or 1)
    response = predict_pb2.PredictResponse.FromString(response_file.read_bytes())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(FixedAnswer(response), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    server.start()
    print("GRPC_NOOP_READY", flush=True)
    try:
        sys.stdin.read()            # until the parent closes our input (or dies)
    finally:
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
