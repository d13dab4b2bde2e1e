"""deploy/: the Kubernetes manifests and the KServe ServingRuntime, checked offline.

Kubernetes objects are validated against the API's JSON schemas that the pinned kubernetes-validate
package ships (strict: an unknown field is an error, as kubectl's default field validation makes it);
the ServingRuntime against KServe's CRD schema, committed in deploy/schemas/. Beyond the schemas:
the flags in the manifests are flags the server accepts, probes and ports agree, the models are
mounted read-only, the containers run as non-root, and the runtime runs the server as KServe's own
TF Serving runtime runs tensorflow_model_server.
"""
from __future__ import annotations

import importlib.metadata
import json
import pathlib
import re

import jsonschema
import pytest
import yaml
from kubernetes_validate.utils import validate as k8s_validate
from packaging.requirements import Requirement

from server import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
KSERVE = DEPLOY / "kserve"
# The oldest and the newest Kubernetes minor versions the manifests are checked against.
K8S_VERSIONS = ["1.29", "1.37"]

# KServe's own runtime for TF Serving (config/runtimes/kserve-tensorflow-serving.yaml, kserve/kserve
# at commit aaac4e29): tensorflow_model_server's flags there. --port=9000 is its gRPC port.
KSERVE_TF_ARGS = ["--model_name={{.Name}}", "--port=9000", "--rest_api_port=8080",
                  "--model_base_path=/mnt/models", "--rest_api_timeout_in_ms=60000"]


def load_all(path: pathlib.Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects() -> dict[str, dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") != "Kustomization":
                found[doc["kind"]] = doc
    return found


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, args)
    return values[0]


# -- schemas ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kind", ["Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"])
def test_kubernetes_objects_match_the_api_schema(kind, version):
    k8s_validate(objects()[kind], version, strict=True)  # raises ValidationError on any problem


def test_schema_check_catches_mistakes():
    deployment = objects()["Deployment"]
    broken = json.loads(json.dumps(deployment))
    container(broken)["readinessProb"] = container(broken).pop("readinessProbe")   # a typo
    with pytest.raises(Exception, match="readinessProb"):
        k8s_validate(broken, K8S_VERSIONS[-1], strict=True)
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(Exception, match="two"):
        k8s_validate(broken, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest():
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def runtime_schema() -> dict:
    return json.loads((DEPLOY / "schemas" / "servingruntime-serving.kserve.io-v1alpha1.json").read_text())


def test_servingruntime_matches_kserve_crd_schema(runtime_schema):
    (runtime,) = load_all(KSERVE / "servingruntime.yaml")
    jsonschema.validate(runtime, runtime_schema)
    broken = json.loads(json.dumps(runtime))
    broken["spec"]["supportedModelFormat"] = broken["spec"].pop("supportedModelFormats")
    with pytest.raises(jsonschema.ValidationError, match="supportedModelFormat"):
        jsonschema.validate(broken, runtime_schema)


# -- what the schemas cannot see ----------------------------------------------------------------------

def test_deployment_runs_the_server_with_flags_it_accepts():
    args = container(objects()["Deployment"])["args"]
    parsed = cli.build_options(args, check_paths=False)   # exits on a flag the server does not know
    assert parsed.rest_api_host == "0.0.0.0"
    assert parsed.model_base_path.startswith("/models/")


def test_probes_ports_and_service_agree():
    objs = objects()
    c = container(objs["Deployment"])
    args = c["args"]
    port = int(flag(args, "rest_api_port"))
    http, grpc_port = c["ports"]
    assert (http["name"], http["containerPort"]) == ("http", port)
    assert (grpc_port["name"], grpc_port["containerPort"]) == ("grpc", int(flag(args, "port")))
    # readiness: the model status API of the model being served (deploy/ready.py PORT NAME)
    assert c["readinessProbe"]["exec"]["command"][-2:] == [str(port), flag(args, "model_name")]
    # liveness over HTTP (a TCP probe passes while every request hangs): the model's status API
    assert c["livenessProbe"]["httpGet"] == {"path": f"/v1/models/{flag(args, 'model_name')}", "port": http["name"]}
    assert c["startupProbe"]["tcpSocket"]["port"] == http["name"]
    service = objs["Service"]["spec"]
    assert [p["targetPort"] for p in service["ports"]] == ["http", "grpc"]
    labels = objs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert objs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", objs["Deployment"]["metadata"]["name"])


def test_models_read_only_and_not_root():
    pod = objects()["Deployment"]["spec"]["template"]["spec"]
    c = container(objects()["Deployment"])
    models = [m for m in c["volumeMounts"] if m["name"] == "models"]
    assert models and all(m["readOnly"] for m in models)
    base = flag(c["args"], "model_base_path")
    assert any(base.startswith(m["mountPath"] + "/") for m in models)
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"]["readOnly"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # SIGTERM: preStop's wait plus the drain fit in the grace period
    assert int(c["lifecycle"]["preStop"]["exec"]["command"][1]) < pod["terminationGracePeriodSeconds"]


def test_servingruntime_runs_the_server_as_kserve_runs_tf_serving():
    (runtime,) = load_all(KSERVE / "servingruntime.yaml")
    spec = runtime["spec"]
    assert {"name": "tensorflow", "version": "2"}.items() <= spec["supportedModelFormats"][0].items()
    (c,) = spec["containers"]
    assert c["name"] == "kserve-container"   # the name KServe looks for
    assert c["command"] == ["tensorflow_model_server"]   # the installed package's command (pyproject.toml)
    ours = c["args"]
    # Every flag KServe gives tensorflow_model_server, with the same value: gRPC on 9000, REST on 8080.
    assert sorted(ours) == sorted(KSERVE_TF_ARGS)
    assert {"v1", "grpc-v1"} <= set(spec["protocolVersions"])
    cli.build_options([a.replace("{{.Name}}", "mlp") for a in ours], check_paths=False)
    assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]   # the one place it writes
    assert any(v["name"] == tmp["name"] and "emptyDir" in v for v in spec["volumes"])


def test_pods_hold_no_service_account_token_and_take_traffic_on_their_ports_only():
    objs = objects()
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    policy = objs["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= objs["Deployment"]["spec"]["template"]["metadata"][
        "labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert sorted(p["port"] for p in rule["ports"]) == sorted(p["name"] for p in container(objs["Deployment"])["ports"])


def test_inferenceservice_selects_the_runtime():
    (runtime,) = load_all(KSERVE / "servingruntime.yaml")
    (isvc,) = load_all(KSERVE / "inferenceservice.yaml")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] == "tensorflow"


# -- the container recipe -----------------------------------------------------------------------------

def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def image_packages() -> list[str]:
    """The image installs the package (pyproject.toml), whose dependencies are requirements/runtime.in."""
    assert re.search(r"^RUN PIP_CONSTRAINT=/src/requirements/lock.txt /opt/venv/bin/pip install --no-cache-dir /src$",
                     dockerfile(), re.MULTILINE), "the Dockerfile's pip install line"
    assert 'dependencies = { file = ["requirements/runtime.in"] }' in (ROOT / "pyproject.toml").read_text()
    lines = (ROOT / "requirements" / "runtime.in").read_text().splitlines()
    return [re.split(r"[=<>~!\[ ]", line)[0] for line in lines if line and not line.startswith("#")]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req = Requirement(line)   # the lock's lines may carry markers (it is made with --universal)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            found[_norm(req.name)] = spec.version
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_image_installs_only_pinned_packages():
    pinned = pins()
    assert all(_norm(p) in pinned for p in image_packages()), (image_packages(), pinned)


def _closure(names: list[str]) -> set[str]:
    """The distributions `names` need (installed here), with their dependencies, without extras."""
    seen, todo = set(), [_norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    return seen


def test_image_has_every_package_the_server_imports():
    """Every third-party module that server/ imports (Ray Serve's extra aside) comes with the image's packages."""
    installed = _closure(image_packages())
    by_module = importlib.metadata.packages_distributions()
    missing = {}
    for path in (ROOT / "server").rglob("*.py"):
        if path.name == "ray_serve.py":
            continue
        for m in re.finditer(r"^\s*(?:from|import) ([A-Za-z_][\w]*)", path.read_text(), re.MULTILINE):
            module = m.group(1)
            if module in by_module and not any(_norm(d) in installed for d in by_module[module]):
                missing[module] = path.name
    assert not missing, missing


def test_image_runs_as_non_root_with_models_mounted():
    text = dockerfile()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert 'VOLUME ["/models"]' in text
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.MULTILINE).group(1))
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.MULTILINE).group(1))
    assert entry == ["tensorflow_model_server"]
    cli.build_options(cmd, check_paths=False)
    # The build context keeps only what the image copies.
    ignore = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[:5] == ["*", "!pyproject.toml", "!requirements/", "!server/", "!deploy/ready.py"]
    copied = re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE)
    assert sorted(copied) == ["deploy/ready.py", "pyproject.toml", "requirements", "server"]
