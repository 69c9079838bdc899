"""Fixtures of the cluster-mode tests: a real five-node Ray cluster (ray start: a head, two
camera nodes, two scorer nodes, all reached at 127.0.0.1) shared by the package, a real
PostgreSQL database per test (tests/conftest.py), and a site config that places camera
workers on camera nodes and scorer replicas on scorer nodes (custom resources)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_cluster import RAY_ENV, LoopbackCluster

from clipwatch.config import CameraConfig, Config

CAMERA_NODE = {"camera_node": 1}  # one camera worker per camera node
SCORER_NODE = {"scorer_node": 1}  # one scorer replica per scorer node


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} in CI (scripts/setup.sh test installs the cluster extra)")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[LoopbackCluster]:
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        _missing(f"Ray is not installed ({ray_bin} missing)")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)  # this process joins the cluster too (the tests' driver)
    cluster = LoopbackCluster(ray_bin)
    try:
        cluster.start_head(num_cpus=1)
        for _ in range(2):
            cluster.add_node(num_cpus=2, resources=CAMERA_NODE)
        for _ in range(2):
            cluster.add_node(num_cpus=2, resources=SCORER_NODE)
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def site(ray_cluster, postgres_url, tmp_path) -> Iterator[dict]:
    """A site config factory on the cluster; its workers and scorers go at the end, and a
    node a test killed is replaced."""
    import ray

    made: list[Config] = []

    def make(cameras: list[CameraConfig], **cluster) -> Config:
        settings = dict(address=ray_cluster.address, database=postgres_url,
                        namespace=f"t{os.getpid()}x{len(made)}", cameras_per_worker=1,
                        scorer_replicas=1, cpus_per_replica=1.0, worker_cpus=1.0,
                        worker_resources=CAMERA_NODE, scorer_resources=SCORER_NODE)
        settings.update(cluster)
        config = Config(cameras=cameras, cluster=settings)
        config.storage.dir = tmp_path / "store"  # the shared folder: one machine here
        config.alerts.merge_seconds = 0.0  # alerts decided by frames alone, not wall clock
        made.append(config)
        return config

    yield {"make": make, "cluster": ray_cluster, "database": postgres_url,
           "storage": tmp_path / "store"}
    if ray.is_initialized():
        from clipwatch.cluster.runtime import stop_site

        for config in made:
            stop_site(config)
    ray_cluster.restore_nodes()
