"""A real multi-node Ray cluster on loopback for the cluster-mode tests.

Every node is started with Ray's own `ray start` (the head, then nodes joining it), told
127.0.0.1 (see RAY_ENV for what Ray makes of it), usage reporting and token auth off, and
node failures detected within a few seconds (the head's health checks run every 0.5 s).
`kill_node` is what a crashed machine looks like to Ray: SIGKILL of the node's raylet and
every process under it (its workers and agents), nothing graceful.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

from pg_server import free_port

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# Ray 2.60 turns a node address of 127.0.0.1 into the machine's own address (it keeps
# loopback only with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which refuses nodes joining): the
# nodes are reached through 127.0.0.1 (the head's address here) and advertise this machine's.
# Faster failure detection than Ray's defaults (3 s x 5): a dead node is declared in ~2 s.
OBJECT_STORE_BYTES = 200 * 1024 * 1024  # per node: the default would reserve 30% of RAM each
SYSTEM_CONFIG = {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                 "health_check_timeout_ms": 1000}


class LoopbackCluster:
    def __init__(self, ray_bin: Path) -> None:
        self.ray = str(ray_bin)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **RAY_ENV}
        self.killed: list[dict] = []  # the nodes kill_node took, for restore_nodes

    def _ray(self, *args: str, env: dict | None = None) -> None:
        result = subprocess.run([self.ray, *args], env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args[:2])} failed:\n{result.stdout[-2000:]}\n"
                               f"{result.stderr[-2000:]}")

    def start_head(self, num_cpus: int = 2, resources: dict | None = None) -> None:
        self._ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                  f"--num-cpus={num_cpus}", f"--resources={json.dumps(resources or {})}",
                  f"--object-store-memory={OBJECT_STORE_BYTES}",
                  "--include-dashboard=false", "--disable-usage-stats",
                  f"--system-config={json.dumps(SYSTEM_CONFIG)}")

    def restore_nodes(self) -> None:
        """Start a node like each one killed (its CPUs and custom resources)."""
        while self.killed:
            node = self.killed.pop()
            custom = {k: v for k, v in node["Resources"].items()
                      if k not in ("CPU", "memory", "object_store_memory", "GPU")
                      and not k.startswith("node:")}
            self.add_node(num_cpus=int(node["Resources"].get("CPU", 1)), resources=custom)

    def add_node(self, num_cpus: int = 2, resources: dict | None = None) -> None:
        self._ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1",
                  f"--num-cpus={num_cpus}", f"--resources={json.dumps(resources or {})}",
                  f"--object-store-memory={OBJECT_STORE_BYTES}",
                  "--disable-usage-stats")

    def stop(self) -> None:
        subprocess.run([self.ray, "stop", "--force"], env=self.env, capture_output=True,
                       timeout=120)

    @staticmethod
    def raylet_pid(node: dict) -> int:
        """The raylet process of a node (from `ray.nodes()`), found by its socket name."""
        socket_name = node["RayletSocketName"]
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"raylet") and \
                    any(socket_name.encode() in a for a in args):
                return int(cmdline.parent.name)
        raise LookupError(f"no raylet for node {node['NodeID']}")

    @staticmethod
    def descendants(pid: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def kill_node(self, node: dict) -> list[int]:
        """SIGKILL the node's raylet and everything under it; the pids killed."""
        raylet = self.raylet_pid(node)
        pids = [raylet, *self.descendants(raylet)]
        self.killed.append(node)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids
