"""Make a version's warm-up file from request logs: `python -m server.make_warmup`.

The request log (request_log.py, a model config's `logging_config`) writes `PredictionLog` records;
TF Serving's warm-up (`<version>/assets.extra/tf_serving_warmup_requests`, saved_model_warmup.cc) reads
the same records. This command picks N of the logged requests and writes them there:

- only requests that succeeded (a record with a status field, request_log.record_status, is left out),
  of the kinds warm-up replays: predict, classify, regress, multi_inference;
- of one model: `--model_name`, or the only model the logs hold;
- spread over what the model was asked: the records are grouped by API and signature, the groups take
  turns, and each group's records are taken evenly over the logs' order; the same logs give the same file;
- at most 1000 records (TF Serving's limit: a file with more fails the version's load);
- the requests only: responses, log metadata and the requests' model versions are left out (warm-up
  reads neither; TF Serving's multi_inference warm-up needs the tasks' model name, which stays).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import OrderedDict
from typing import Iterable, Sequence

# warmup.py's MAX_RECORDS and WARMUP_FILE, written again so that --help does not load TensorFlow (warmup.py
# imports it); tests/test_make_warmup.py checks they agree.
MAX_RECORDS = 1000          # TF Serving's WarmupConsts::kMaxNumRecords
DEFAULT_RECORDS = 100
KINDS = ("predict_log", "classify_log", "regress_log", "multi_inference_log")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

USAGE = """python -m server.make_warmup [--model_name NAME] [--num_records N] (--version_dir DIR | --output FILE)
       LOGS [LOGS ...]"""
DESCRIPTION = """Turn request logs (a model config's logging_config: TFRecord files of PredictionLog) into a
warm-up file, assets.extra/tf_serving_warmup_requests, that this server and TF Serving replay before a
version is served. LOGS are log files, folders (every *.tfrecord file in them) or a logging_config's
filename_prefix (every PREFIX-*.tfrecord file). Only requests that succeeded are taken, spread over the
model's APIs and signatures, the same way every time. Write the file into a version folder before that
folder appears under the model's base path (make it elsewhere, then move it there): a version is warmed
up once, when it loads."""


def log_files(sources: Iterable[str]) -> list[str]:
    """The TFRecord files that `sources` (files, folders, filename prefixes) name, in a stable order."""
    files: list[str] = []
    for source in sources:
        if os.path.isdir(source):
            found = sorted(glob.glob(os.path.join(glob.escape(source), "*.tfrecord")))
        elif os.path.isfile(source):
            found = [source]
        else:
            found = sorted(glob.glob(glob.escape(source) + "-*.tfrecord"))
        if not found:
            raise SystemExit(f"make_warmup: no request log files at {source}")
        files.extend(f for f in found if f not in files)
    return files


def read_logs(files: Sequence[str]):
    """(PredictionLog, status) of every record of `files`, in order."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from .request_log import record_status
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            data = record.numpy()
            yield prediction_log_pb2.PredictionLog.FromString(data), record_status(data)


def model_of(entry) -> str:
    kind = entry.WhichOneof("log_type")
    if entry.log_metadata.model_spec.name:
        return entry.log_metadata.model_spec.name
    request = getattr(entry, kind).request
    if kind == "multi_inference_log":
        return request.tasks[0].model_spec.name if request.tasks else ""
    return request.model_spec.name


def group_of(entry) -> tuple:
    """What a record asked: its API and signature(s)."""
    from .signatures import DEFAULT_SIGNATURE  # here: --help does not load TensorFlow
    kind = entry.WhichOneof("log_type")
    request = getattr(entry, kind).request
    if kind == "multi_inference_log":
        return kind, tuple((t.method_name, t.model_spec.signature_name or DEFAULT_SIGNATURE) for t in request.tasks)
    return kind, request.model_spec.signature_name or DEFAULT_SIGNATURE


def choose(entries: Sequence, n: int) -> list[int]:
    """Indices of `n` of `entries` (or all of them), spread over their groups: the groups (in order of first
    appearance) take turns, one record a turn, until n are taken or none is left; each group's records are
    then chosen evenly over its records in order. The indices come back in the logs' order."""
    groups: OrderedDict[tuple, list[int]] = OrderedDict()
    for i, entry in enumerate(entries):
        groups.setdefault(group_of(entry), []).append(i)
    quota = {g: 0 for g in groups}
    left = min(n, len(entries))
    while left > 0:
        for g, members in groups.items():
            if left > 0 and quota[g] < len(members):
                quota[g] += 1
                left -= 1
    chosen: list[int] = []
    for g, members in groups.items():
        k = quota[g]
        chosen.extend(members[(j * len(members)) // k] for j in range(k))
    return sorted(chosen)


def request_only(entry):
    """The record as warm-up needs it: the request, without the response, metadata or model version."""
    from tensorflow_serving.apis import prediction_log_pb2
    kind = entry.WhichOneof("log_type")
    out = prediction_log_pb2.PredictionLog()
    request = getattr(out, kind).request
    request.CopyFrom(getattr(entry, kind).request)
    specs = [t.model_spec for t in request.tasks] if kind == "multi_inference_log" else [request.model_spec]
    for spec in specs:
        spec.ClearField("version_choice")
    return out


def make_warmup(sources: Sequence[str], output: str, num_records: int = DEFAULT_RECORDS,
                model_name: str | None = None, out=sys.stdout) -> int:
    """Write the warm-up file; returns the number of records written."""
    if not 1 <= num_records <= MAX_RECORDS:
        raise SystemExit(f"make_warmup: --num_records must be between 1 and {MAX_RECORDS} (TF Serving's limit "
                         f"of warm-up records), not {num_records}")
    files = log_files(sources)
    read = failed = other_kind = other_model = 0
    models: set[str] = set()
    usable = []
    for entry, status in read_logs(files):
        read += 1
        if entry.WhichOneof("log_type") not in KINDS:
            other_kind += 1
        elif status != "OK":
            failed += 1
        elif model_name is not None and model_of(entry) != model_name:
            other_model += 1
        else:
            models.add(model_of(entry))
            usable.append(entry)
    if len(models) > 1:
        raise SystemExit(f"make_warmup: the logs hold requests for {len(models)} models "
                         f"({', '.join(sorted(models))}); a warm-up file is for one: choose it with --model_name")
    if not usable:
        raise SystemExit(f"make_warmup: none of the {read} record(s) in {len(files)} file(s) is a request "
                         "that succeeded" + (f" for model {model_name}" if model_name else ""))
    chosen = [usable[i] for i in choose(usable, num_records)]
    import tensorflow as tf
    folder = os.path.dirname(output)
    if folder:
        os.makedirs(folder, exist_ok=True)
    partial = output + ".partial"
    with tf.io.TFRecordWriter(partial) as writer:
        for entry in chosen:
            writer.write(request_only(entry).SerializeToString())
    os.replace(partial, output)
    groups: OrderedDict[tuple, int] = OrderedDict()
    for entry in chosen:
        key = group_of(entry)
        groups[key] = groups.get(key, 0) + 1
    print(f"Read {read} record(s) from {len(files)} file(s): {len(usable)} usable, {failed} failed request(s), "
          f"{other_kind} of other kinds, {other_model} of other models.", file=out)
    for (kind, signature), count in groups.items():
        what = ", ".join(s for _, s in signature) if kind == "multi_inference_log" else signature
        print(f"  {kind[:-4]} {what}: {count}", file=out)
    print(f"Wrote {len(chosen)} record(s) to {output}", file=out)
    return len(chosen)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.make_warmup", usage=USAGE, description=DESCRIPTION)
    parser.add_argument("logs", nargs="+", metavar="LOGS",
                        help="request log files, folders of them, or a logging_config filename_prefix")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--version_dir", help=f"a version folder: the file is written as DIR/{WARMUP_FILE}")
    where.add_argument("--output", help="the warm-up file to write")
    parser.add_argument("--num_records", type=int, default=DEFAULT_RECORDS,
                        help=f"how many requests to take (default {DEFAULT_RECORDS}, at most {MAX_RECORDS})")
    parser.add_argument("--model_name", help="take only this model's requests (needed when the logs hold several)")
    args = parser.parse_args(argv)
    output = args.output or os.path.join(args.version_dir, WARMUP_FILE)
    make_warmup(args.logs, output, args.num_records, args.model_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
