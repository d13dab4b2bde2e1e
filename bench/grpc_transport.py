"""Which grpcio server serves small Predict requests fastest with one worker: `python -m bench.grpc_transport`.

Each variant runs in its own process over the same services (server/grpc/) and the same model call,
driven from another process that keeps 32 calls in flight (a grpc.aio client sending pre-serialized
requests) for 5 s; the variants take turns, round after round.
Variants: the thread-pool server (grpc.server) with 1 and with 8 threads, and the asyncio server
(grpc.aio.server) calling the handler in the event loop, or handing it to a thread pool of 1.
`--model PATH`: a SavedModel base folder of the handbook's MNIST model (its `serving_default` takes
"inputs" [batch, 28, 28, 1]); without it a stand-in model call returns y = 0.5 x + 2 at once, to measure
the transport alone.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time

import numpy as np

DURATION = 5.0
CLIENTS = 1
IN_FLIGHT = 32


class StandIn:
    """A DataPlane whose predict answers at once (the transport's cost only)."""

    def predict(self, spec, inputs, output_filter=()):
        from server.dataplane import Result
        x = inputs["x"] if not callable(inputs) else inputs(_SIG)["x"]
        return Result(spec.name, 1, spec.signature_name or "serving_default", {"y": x * 0.5 + 2})


class _Sig:
    inputs = {"x": None}
    proto = None


_SIG = _Sig()


def _plane(model: str | None):
    if model is None:
        return StandIn(), "m"
    from server.config import single_model
    from server.dataplane import DataPlane
    from server.lifecycle import ModelManager
    from server.servable import load_servable
    manager = ModelManager(single_model("m", model), file_system_poll_wait_seconds=0,
                           loader=lambda n, v, p: load_servable(n, v, p, tensorflow_intra_op_parallelism=1,
                                                                   tensorflow_inter_op_parallelism=-1))
    manager.start()
    plane = DataPlane(manager)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = plane.model_status(__import__("server.dataplane", fromlist=["ModelSpec"]).ModelSpec("m"))
            if any(v.state == v.AVAILABLE for v in status.model_version_status):
                break
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.1)
    return plane, "m"


def serve(variant: str, port: int, model: str | None, ready) -> None:
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from server.grpc.prediction_service import PredictionService
    plane, _ = _plane(model)
    service = PredictionService(plane)
    if variant.startswith("sync"):
        threads = int(variant.split("-")[1])
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        ready.set()
        server.wait_for_termination()
        return

    executor = futures.ThreadPoolExecutor(max_workers=1) if variant == "aio-executor" else None

    class AioService(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            if executor is None:
                return _aio_call(service, request, context)
            return await asyncio.get_running_loop().run_in_executor(executor, _aio_call, service, request, context)

    async def main():
        server = grpc.aio.server()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(AioService(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()
    asyncio.run(main())


def _aio_call(service, request, context):
    from server.grpc import prediction_service
    return prediction_service.predict(service.plane, request)


def drive(port: int, model: str | None, images: int, go, counts) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    if model is None:
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.random.rand(images, 784).astype(np.float32)))
    else:  # the handbook's MNIST models: "inputs", [batch, 28, 28, 1]
        request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(np.random.rand(images, 28, 28, 1).astype(np.float32)))

    body = request.SerializeToString()

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            # Bytes in, bytes out: the client spends no time on protobuf (the server does all of it).
            call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
            await call(body)
            counts.put("ready")
            go.wait()
            until = time.monotonic() + DURATION
            done = 0

            async def loop():
                nonlocal done
                while time.monotonic() < until:
                    await call(body)
                    done += 1
            await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
            counts.put(done)
    asyncio.run(main())


def measure(variant: str, model: str | None, images: int) -> float:
    from tests.serverproc import free_port
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=serve, args=(variant, port, model, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(120):
            raise RuntimeError(f"{variant} did not start")
        counts, go = ctx.Queue(), ctx.Event()
        clients = [ctx.Process(target=drive, args=(port, model, images, go, counts)) for _ in range(CLIENTS)]
        for c in clients:
            c.start()
        for _ in clients:
            assert counts.get(timeout=120) == "ready"
        go.set()
        total = sum(counts.get(timeout=120) for _ in clients)
        for c in clients:
            c.join(30)
        return total / DURATION
    finally:
        server.terminate()
        server.join(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None)
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", default="sync-1,sync-8,aio-inline,aio-executor")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for r in range(args.rounds):
        for variant in args.variants.split(","):
            rate = measure(variant, args.model, args.images)
            print(f"round {r + 1} {variant:13s} {rate:8.0f} req/s", flush=True)


if __name__ == "__main__":
    main()
