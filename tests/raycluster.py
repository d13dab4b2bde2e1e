"""A real multi-node Ray cluster on this machine, every address on 127.0.0.1, for tests and the docs.

`with LocalRayCluster(worker_nodes=2) as cluster:` starts a head node (no CPUs: it runs Ray Serve's
controller and HTTP proxy only) and worker nodes of one CPU each, each node its own raylet and object
store (Ray's `cluster_utils.Cluster`, the way Ray tests itself), so that replicas asking for one CPU
land on different nodes. No dashboard, no usage reporting, no metrics export; small object stores.
`kill_node()` ends a worker node's raylet and every process on it at once, as a machine failure does.
Everything is stopped when the block ends.
"""
from __future__ import annotations

import ipaddress
import os
import pathlib
import sys
from typing import Self

LOOPBACK = "127.0.0.1"
OBJECT_STORE_BYTES = 80 * 1024 * 1024   # Ray's minimum is 75 MiB; the tests move no large objects

# Set before Ray starts any process: the head and every node inherit them.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",           # no usage report sent anywhere
    # Ray turns a loopback address given to ray.init() into "this machine's address", found by asking
    # the routing table for the interface towards the internet; with this set to 0 it stays 127.0.0.1
    # (its only effect on Linux: ray/_private/services.py get_node_ip_address).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_enable_metrics_collection": "0",     # no metrics agent export
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def loopback_only() -> None:
    """Ray's worker-process set-up hook: Serve replicas bind their inter-deployment gRPC server to
    127.0.0.1 instead of every interface ("[::]:0" is hard-coded in ray/serve/_private/replica.py,
    Ray 2.60). Needed only because this machine must not listen beyond loopback; on a real
    multi-machine cluster replicas must be reachable from other nodes."""
    from ray.serve._private import replica

    bind = replica.add_port_to_grpc_server

    def bind_loopback(server, address):
        return bind(server, address.replace("[::]:", LOOPBACK + ":"))

    replica.add_port_to_grpc_server = bind_loopback


ROOT = pathlib.Path(__file__).resolve().parent.parent
# Workers import `server` and this module from the repository (the set-up hook runs before Ray puts
# the driver's folder on their path).
RUNTIME_ENV = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)},
               "worker_process_setup_hook": "tests.raycluster.loopback_only"}


def _children(pid: int) -> set[int]:
    """pid and every process below it (from /proc: Ray's raylets and their workers are our descendants)."""
    parents: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(parents.get(p, []))
    return found


def listening_addresses(pid: int | None = None) -> set[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket listening in `pid`'s process tree (default: this one)."""
    inodes: dict[str, int] = {}
    for p in _children(pid or os.getpid()):
        try:
            for fd in pathlib.Path(f"/proc/{p}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = p
        except OSError:
            continue
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            found.add((_address(hex_addr, width), int(hex_port, 16), inodes[inode]))
    return found


def _address(hex_addr: str, width: int) -> str:
    raw = bytes.fromhex(hex_addr)
    # /proc/net writes each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)   # ::ffff:127.0.0.1, an IPv4 socket on an IPv6 one
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


class LocalRayCluster:
    def __init__(self, worker_nodes: int = 2, cpus_per_node: int = 1):
        self.worker_count, self.cpus_per_node = worker_nodes, cpus_per_node
        self.cluster = None
        self.workers: list = []

    def __enter__(self) -> Self:
        os.environ.update(RAY_ENV)   # for every Ray process started from here on
        from ray._private import ray_constants

        # ... and for this one, when Ray was imported before the variable was set.
        ray_constants.ENABLE_RAY_CLUSTER = False

        # Ray gives a node 30 s to register with the head; on a loaded 2-core machine that can run out
        # once (seen in a CI run). A second try starts from nothing; a second failure is the error.
        for attempt in (1, 2):
            try:
                return self._start()
            except BaseException as e:
                self.__exit__()
                if attempt == 2 or not isinstance(e, Exception):
                    raise
                print(f"raycluster: the local cluster did not start ({e!r}); starting it again", file=sys.stderr)

    def _start(self) -> Self:
        import ray
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args=self._node_args(num_cpus=0))
        for _ in range(self.worker_count):
            self.add_node()
        ray.init(address=self.cluster.address, logging_level="WARNING", runtime_env=RUNTIME_ENV)
        self.cluster.wait_for_nodes()
        return self

    def _node_args(self, **extra) -> dict:
        return {
            "node_ip_address": LOOPBACK,
            "include_dashboard": False,
            "object_store_memory": OBJECT_STORE_BYTES,
            "dashboard_host": LOOPBACK,
            "ray_client_server_port": None,
            **extra,
        }

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_node(self):
        node = self.cluster.add_node(**self._node_args(num_cpus=self.cpus_per_node))
        self.workers.append(node)
        return node

    def kill_node(self, node) -> None:
        """Kill a worker node at once (raylet, object store and its workers), no graceful drain."""
        self.workers.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)

    def node_id(self, node) -> str:
        return node.node_id

    def __exit__(self, *exc) -> None:
        import ray
        try:
            from ray import serve
            if ray.is_initialized():
                serve.shutdown()
        finally:
            ray.shutdown()
            if self.cluster is not None:
                self.cluster.shutdown()
                self.cluster = None
            self.workers = []
