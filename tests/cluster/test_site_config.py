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
