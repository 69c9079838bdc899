"""The documented site config (docs/site.example.yaml) is a valid cluster config, and a
config without `cluster:` stays the embedded single process."""

from __future__ import annotations

import pytest

from clipwatch.cluster.runtime import camera_groups
from clipwatch.config import Config, ConfigError, load_config


def test_the_example_site_loads_and_groups_its_cameras(repo_root):
    config = load_config(repo_root / "docs" / "site.example.yaml")
    assert config.cluster is not None and config.cluster.scorer_replicas == 2
    assert camera_groups(config) == {"clipwatch-cameras-0": ["entrance"],
                                     "clipwatch-cameras-1": ["yard"]}


def test_without_a_cluster_section_nothing_changes():
    assert Config().cluster is None


def test_a_database_that_is_not_postgresql_is_refused_in_one_line(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("cluster:\n  database: sqlite:///events.db\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "cluster.database" in str(info.value) and "\n" not in str(info.value)


def test_a_worker_is_replaced_for_what_it_reads_not_for_a_web_process_port():
    from clipwatch.cluster.runtime import worker_spec

    site = Config.model_validate({
        "cameras": [{"id": "a", "source": "rtsp://cam-a/stream"},
                    {"id": "b", "source": "rtsp://cam-b/stream"}],
        "cluster": {"database": "postgresql://clipwatch@db/clipwatch"}})
    wire = site.model_dump(mode="json")
    spec = worker_spec(wire, ["a"])
    other_port = site.model_copy(deep=True)
    other_port.server.port = 8001  # a second web process of the same site
    assert worker_spec(other_port.model_dump(mode="json"), ["a"]) == spec
    other_b = site.model_copy(deep=True)
    other_b.cameras[1].source = "rtsp://cam-b/other"  # another worker's camera
    assert worker_spec(other_b.model_dump(mode="json"), ["a"]) == spec
    moved = site.model_copy(deep=True)
    moved.cameras[0].source = "rtsp://cam-a/other"
    assert worker_spec(moved.model_dump(mode="json"), ["a"]) != spec
    stricter = site.model_copy(deep=True)
    stricter.alerts.open_frames = 8
    assert worker_spec(stricter.model_dump(mode="json"), ["a"]) != spec


def test_a_cameras_own_model_is_refused_in_cluster_mode(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("cameras:\n  - {id: a, source: rtsp://cam-a/s, model: other.onnx}\n"
                    "cluster:\n  database: postgresql://clipwatch@db/clipwatch\n")
    with pytest.raises(ConfigError, match="cameras a name their own model"):
        load_config(path)
