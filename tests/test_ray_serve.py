"""server.ray_serve: this server's REST API from Ray Serve replicas on a real multi-node Ray cluster.

The cluster runs on this machine (tests/raycluster.py: a head with no CPUs, worker nodes of one CPU,
every address on 127.0.0.1). `make test` runs the short form (replicas on two nodes, the same answers
as the single server, a new version picked up by every replica); `make test-ray` (RAY_FULL=1) also
kills a node under load, replaces it and lets Ray Serve's autoscaler scale down and up.
"""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("ray", reason="Ray is an optional extra: `make ray-deps` installs requirements-ray.txt")
pytest.importorskip("a2wsgi", reason="`make ray-deps` installs requirements-ray.txt")

from server import ray_serve
from tests import ray_scenario

FULL = os.environ.get("RAY_FULL") == "1"
full_only = pytest.mark.skipif(not FULL, reason="the long form: `make test-ray` (RAY_FULL=1)")


# -- the command line, no cluster ---------------------------------------------------------------------

def test_ray_flags_and_server_flags_are_split():
    opts, rest = ray_serve.build_parser().parse_known_args(
        ["--num_replicas=3", "--model_name=m", "--model_base_path=/x", "--rest_api_port=8000",
         "--autoscaling_config", '{"min_replicas": 1, "max_replicas": 4}'])
    assert opts.num_replicas == 3
    assert rest == ["--model_name=m", "--model_base_path=/x", "--rest_api_port=8000"]
    options = ray_serve.deployment_options(opts)
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4}
    assert "num_replicas" not in options  # Ray refuses both at once
    assert options["ray_actor_options"] == {"num_cpus": 1.0}


def test_fixed_replicas_without_autoscaling():
    opts, _ = ray_serve.build_parser().parse_known_args(["--num_replicas=2", "--num_cpus_per_replica=0.5"])
    options = ray_serve.deployment_options(opts)
    assert options["num_replicas"] == 2 and "autoscaling_config" not in options
    assert options["ray_actor_options"] == {"num_cpus": 0.5}


def test_server_flags_are_checked_before_deploying(tmp_path, capsys):
    with pytest.raises(SystemExit):  # the same message as `python -m server`
        ray_serve.check_server_flags(["--rest_api_port=8000"])
    assert "--model_base_path" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="Could not find base path"):
        ray_serve.check_server_flags(["--rest_api_port=8000", f"--model_base_path={tmp_path / 'missing'}"])


def test_replicas_serve_rest_only(testdata, capsys):
    base = testdata / "saved_model_half_plus_two_2_versions"
    flags = ["--rest_api_port=8000", "--port=8500", f"--model_base_path={base}"]
    options = ray_serve.check_server_flags(flags)
    assert (options.rest_api_port, options.port, options.grpc_enabled) == (8000, 0, False)
    with pytest.raises(SystemExit) as exit_:   # the server's own check, or ours when it serves gRPC alone
        ray_serve.check_server_flags(["--port=8500", f"--model_base_path={base}"])
    assert "--rest_api_port is required" in str(exit_.value) + capsys.readouterr().err


def test_proxies_listen_on_loopback_unless_an_address_is_given(testdata):
    base = f"--model_base_path={testdata / 'saved_model_half_plus_two_2_versions'}"
    options = ray_serve.check_server_flags(["--rest_api_port=8000", base])
    assert options.rest_api_host == "0.0.0.0"   # the single server's default, as TF Serving's
    assert ray_serve.proxy_http_options(options) == {"host": "127.0.0.1", "port": 8000}
    options = ray_serve.check_server_flags(["--rest_api_port=8000", "--rest_api_host=0.0.0.0", base])
    assert ray_serve.proxy_http_options(options) == {"host": "0.0.0.0", "port": 8000}


def test_runtime_env_ships_the_server_package():
    opts, _ = ray_serve.build_parser().parse_known_args([])
    env = ray_serve.runtime_env(opts)
    assert env["py_modules"] and env["py_modules"][0].endswith("server")
    opts, _ = ray_serve.build_parser().parse_known_args(
        ["--upload_code=false", '--runtime_env={"env_vars": {"A": "1"}, "worker_process_setup_hook": "m.f"}'])
    env = ray_serve.runtime_env(opts)
    assert "py_modules" not in env
    assert env["env_vars"] == {"TF_CPP_MIN_LOG_LEVEL": "2", "A": "1"}
    assert env["worker_process_setup_hook"] == "m.f"


# -- on the cluster -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The single server's answers (`python -m server`, same flags)."""
    return ray_scenario.single_server_answers(ray_scenario.make_base_path(tmp_path_factory.mktemp("single")))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    with ray_scenario.Scenario(tmp_path_factory.mktemp("ray")) as sc:
        sc.deploy("--num_replicas=2")
        yield sc


def test_replicas_run_on_different_nodes(scenario):
    replicas = scenario.replicas(want=2)
    assert len(replicas) == 2, replicas
    assert len(set(replicas.values())) == 2, f"both replicas on one node: {replicas}"
    assert set(replicas.values()) <= {n.node_id for n in scenario.cluster.workers}


def test_every_listening_address_is_loopback(scenario):
    assert scenario.listening() == []


def test_replicas_answer_as_the_single_server(scenario, expected):
    result = scenario.parity(expected)
    assert result["replicas_per_request"] == [2]
    mismatches = [(req, replica, got, want)
                  for req, want, answers in zip(ray_scenario.PARITY_REQUESTS, expected, scenario._answers)
                  for replica, got in answers.items() if got != want]
    assert not mismatches, json.dumps(mismatches[:3], indent=1)
    assert result["identical"] == result["answers_compared"] == 2 * len(ray_scenario.PARITY_REQUESTS)


def test_a_new_version_is_picked_up_by_every_replica(scenario):
    result = scenario.new_version()
    assert result["replicas_with_version_2"] == 2, result


@full_only
def test_a_node_killed_under_load(scenario):
    result = scenario.kill_node_under_load()
    assert result["requests_after_kill"] > 100, result
    # Requests in flight on the killed replica may fail; everything after that succeeds.
    assert result["failures_after_kill"] <= 0.05 * result["requests_after_kill"], result
    assert result["last_failure_s_after_kill"] < 6.0, result
    assert result["failures"] == result["failures_after_kill"], result


@full_only
def test_a_new_node_gets_the_lost_replica(scenario):
    result = scenario.replace_node()
    assert result["replicas_running"] == 2, result
    assert len(set(scenario.replicas(want=2).values())) == 2


@full_only
def test_autoscaling_down_when_idle_and_up_under_load(scenario):
    result = scenario.autoscale()
    assert result["settled"] == {"RUNNING": 1}, result
    assert result["loaded_replicas"] == 2, result
    assert result["idle_replicas"] == 1, result
    assert result["failures"] == 0, result
