"""Prometheus metrics in the manner of TF Serving's `--monitoring_config_file`.

Three parts:

* `read_config_file` / `parse_config`: the `--monitoring_config_file`, a
  `tensorflow.serving.MonitoringConfig` message in protobuf text format. The message lives in TF
  Serving's `tensorflow_serving/config/monitoring_config.proto`, which the tensorflow-serving-api
  wheel does not ship, so the message classes are built (textproto.message_classes) from a
  descriptor with the same package, names, numbers and types; protobuf's own `text_format` parses
  the file, so unknown fields and bad syntax fail with protobuf's messages. An empty `path` means TF Serving's default,
  `/monitoring/prometheus/metrics` (PrometheusExporter::kPrometheusPath).

* `Metrics`: the collectors of one app, made with prometheus-client and named as TF Serving names
  them where TF Serving has the metric (`/tensorflow/serving/request_count` is exported as
  `:tensorflow:serving:request_count`; latencies are in microseconds with TF Serving's buckets).
  Every instance has its own `CollectorRegistry`, so tests can build as many apps as they like.
  With several worker processes (`enable_multiprocess`, called by the parent before the fork),
  values go to prometheus-client's memory-mapped files in one folder and every scrape adds up all
  workers' files, so the page shows the whole server, whichever worker answers it.

* `Metrics.render()`: the page, in Prometheus' text format as TF Serving writes it. A counter is
  exported under its own name (`:tensorflow:serving:request_count 3`), not with the `_total`
  suffix that prometheus-client's own exposition adds, so queries written for TF Serving work here.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass

from . import textproto
from .config import ConfigError

# ---------------------------------------------------------------------------------------------
# MonitoringConfig
# ---------------------------------------------------------------------------------------------

DEFAULT_PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_OPT = textproto.OPTIONAL
_CLASSES = textproto.message_classes("tensorflow_serving/config/monitoring_config.proto", "tensorflow.serving", {
    "PrometheusConfig": [("enable", 1, _OPT, textproto.BOOL, None), ("path", 2, _OPT, textproto.STRING, None)],
    "MonitoringConfig": [("prometheus_config", 1, _OPT, textproto.MESSAGE, ".tensorflow.serving.PrometheusConfig")],
})
MonitoringConfigProto, PrometheusConfigProto = _CLASSES["MonitoringConfig"], _CLASSES["PrometheusConfig"]


@dataclass(frozen=True)
class PrometheusSettings:
    """What the server needs from a MonitoringConfig: whether to serve metrics, and where."""
    enable: bool = False
    path: str = DEFAULT_PATH


def parse_config(text: str, source: str = "<monitoring config>") -> PrometheusSettings:
    """A MonitoringConfig in protobuf text format; raises ConfigError with one clear sentence."""
    msg = textproto.parse(text, MonitoringConfigProto(), f"Invalid protobuf file: '{source}': ", ConfigError)
    config = msg.prometheus_config
    path = config.path or DEFAULT_PATH
    if config.enable and not path.startswith("/"):
        raise ConfigError(f"Invalid monitoring config '{source}': prometheus_config.path must start with '/', "
                          f"got {config.path!r}")
    return PrometheusSettings(enable=config.enable, path=path)


def read_config_file(path: str | os.PathLike) -> PrometheusSettings:
    """`--monitoring_config_file`; raises ConfigError (unreadable, not text, bad syntax, unknown field)."""
    return parse_config(textproto.read_text(path, "monitoring config", ConfigError), str(path))


# ---------------------------------------------------------------------------------------------
# Several worker processes
# ---------------------------------------------------------------------------------------------

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess() -> str:
    """Make a fresh folder for every worker's values and switch prometheus-client to it.

    Call in the parent before the workers fork. Returns the folder (remove it with
    `cleanup_multiprocess` when the server stops).
    """
    folder = tempfile.mkdtemp(prefix="tf-serving-flask-metrics-")
    os.environ[_ENV] = folder
    # prometheus-client chooses how values are stored when it is first imported; choose again in
    # case it already was (its metrics read `values.ValueClass` whenever one is made).
    from prometheus_client import values
    values.ValueClass = values.MultiProcessValue()
    return folder


def multiprocess_dir() -> str | None:
    return os.environ.get(_ENV) or None


def mark_process_dead(pid: int) -> None:
    """A worker has exited: its live gauges stop counting (called in the worker at exit)."""
    folder = multiprocess_dir()
    if folder and os.path.isdir(folder):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid, folder)


def cleanup_multiprocess(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if os.environ.get(_ENV) == folder:
        del os.environ[_ENV]


# ---------------------------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------------------------

# TF Serving's latency buckets (servables/tensorflow/util.cc): Buckets::Exponential(10, 1.8, 33),
# in microseconds, from 10 us to about 20 minutes.
LATENCY_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33)) + (math.inf,)

# API label values, as TF Serving's RecordRequestLatency(model, api, entrypoint) calls use them.
API_NAMES = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
ENTRYPOINT = "REST"


class Metrics:
    """The collectors of one app (one worker process).

    `registry`: where the collectors register in single-process use (a fresh CollectorRegistry by
    default). With `multiprocess_dir` (see `enable_multiprocess`) the collectors write to that
    folder's files instead and `render()` adds up the files of every worker.
    """

    def __init__(self, registry=None, multiprocess_dir: str | None = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir:
            from prometheus_client import multiprocess
            self.registry = CollectorRegistry(auto_describe=True)
            multiprocess.MultiProcessCollector(self.registry, path=multiprocess_dir)
            target = None  # values live in the folder's files, not in an in-process registry
        else:
            self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
            target = self.registry

        self.request_count = Counter(
            ":tensorflow:serving:request_count", "The total number of requests.",
            ["model_name", "status"], registry=target)
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS_US, registry=target)
        self.load_latency = Counter(
            ":tensorflow:cc:saved_model:load_latency",
            "Latency in microseconds for SavedModels that were successfully loaded.",
            ["model_path"], registry=target)
        self.load_attempt_count = Counter(
            ":tensorflow:cc:saved_model:load_attempt_count",
            "The number of times a SavedModel was successfully loaded.",
            ["model_path", "status"], registry=target)
        self.model_warmup_latency = Histogram(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.",
            ["model_path", "status"], buckets=LATENCY_BUCKETS_US, registry=target)
        # Not a TF Serving metric: how many versions of each model every live worker serves.
        self.available_versions = Gauge(
            "tf_serving_flask_model_available_versions",
            "Number of AVAILABLE versions of the model (the fewest over the live worker processes).",
            ["model_name"], multiprocess_mode="livemin", registry=target)
        self._available: dict[str, set[int]] = {}
        # The request log (request_log.py): TF Serving's count of records logged, by model and write status,
        # and this server's count of records dropped because the writer's queue was full.
        self.request_log_count = Counter(
            ":tensorflow:serving:request_log_count",
            "The total number of requests logged from the model server sliced down by model_name and status code.",
            ["model_name", "status_code"], registry=target)
        self.request_log_dropped = Counter(
            "tf_serving_flask_request_log_dropped",
            "Requests sampled for the request log but dropped because its queue was full.",
            ["model_name"], registry=target)

    # -- recording ----------------------------------------------------------------------------
    def record_request(self, model_name: str, api: str, status: str, seconds: float | None,
                       entrypoint: str = ENTRYPOINT) -> None:
        """One predict/classify/regress request: `status` is the TF code name ("OK", "NOT_FOUND", ...);
        `entrypoint` "REST" or "GRPC"; `seconds` None records the count only (TF Serving's gRPC
        services time successful requests only)."""
        self.request_count.labels(model_name, status).inc()
        if seconds is not None:
            self.request_latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def record_log(self, model_name: str, status: str) -> None:
        self.request_log_count.labels(model_name, status).inc()

    def record_log_dropped(self, model_name: str) -> None:
        self.request_log_dropped.labels(model_name).inc()

    def record_load(self, model_path: str, seconds: float, ok: bool) -> None:
        if ok:
            self.load_latency.labels(model_path).inc(seconds * 1e6)
        self.load_attempt_count.labels(model_path, "success" if ok else "fail").inc()

    def record_warmup(self, model_path: str, seconds: float, status: str) -> None:
        self.model_warmup_latency.labels(model_path, status).observe(seconds * 1e6)

    def on_state(self, name: str, version: int, state: str) -> None:
        """A version changed state (lifecycle.ModelManager's on_state): keeps the gauge current."""
        versions = self._available.setdefault(name, set())
        if state == "AVAILABLE":
            versions.add(version)
        else:
            versions.discard(version)
        self.available_versions.labels(name).set(len(versions))

    # -- the page -----------------------------------------------------------------------------
    def render(self) -> bytes:
        """The whole page in Prometheus' text format, counters under TF Serving's names."""
        from prometheus_client.utils import floatToGoString

        lines = []
        for family in sorted(self.registry.collect(), key=lambda f: f.name):
            name, kind = family.name, family.type
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            if not samples:
                continue
            lines.append(f"# HELP {name} {_escape_help(family.documentation)}")
            lines.append(f"# TYPE {name} {kind if kind in ('counter', 'gauge', 'histogram') else 'untyped'}")
            for s in samples:
                sample_name = name if kind == "counter" and s.name == name + "_total" else s.name
                labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels.items())
                lines.append(f"{sample_name}{{{labels}}} {floatToGoString(s.value)}" if labels
                             else f"{sample_name} {floatToGoString(s.value)}")
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def sample(self, name: str, labels: dict | None = None) -> float | None:
        """One value from the page as a scrape would see it (all workers added up), or None."""
        for family in self.registry.collect():
            for s in family.samples:
                sample_name = family.name if family.type == "counter" and s.name == family.name + "_total" else s.name
                if sample_name == name and (labels is None or all(s.labels.get(k) == v for k, v in labels.items())):
                    return s.value
        return None


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# ---------------------------------------------------------------------------------------------
# Wiring into the model manager (lifecycle.ModelManager's loader and warmup hooks)
# ---------------------------------------------------------------------------------------------

def timed_loader(metrics: Metrics, loader):
    """`loader(name, version, path)` that records TF's SavedModel load latency and attempts."""
    import time

    def load(name, version, path):
        started = time.perf_counter()
        try:
            servable = loader(name, version, path)
        except BaseException:
            metrics.record_load(path, time.perf_counter() - started, ok=False)
            raise
        metrics.record_load(path, time.perf_counter() - started, ok=True)
        return servable
    return load


def timed_warmup(metrics: Metrics, warmup):
    """`warmup(servable)` that records TF Serving's model_warmup_latency when a warm-up file ran."""
    import time

    def run(servable):
        started = time.perf_counter()
        try:
            count = warmup(servable)
        except Exception as e:
            metrics.record_warmup(servable.path, time.perf_counter() - started, getattr(e, "code", "UNKNOWN"))
            raise
        if count:  # TF Serving records nothing for a version without warm-up records
            metrics.record_warmup(servable.path, time.perf_counter() - started, "OK")
        return count
    return run
