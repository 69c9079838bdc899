"""The config file: loading, refusing bad input with one line, writing back atomically."""

import pytest

from clipwatch.config import Config, ConfigError, demo_camera, load_config, save_config


def test_a_full_config_loads(tmp_path):
    path = tmp_path / "clipwatch.yaml"
    path.write_text(
        "cameras:\n"
        "  - id: gate\n    source: rtsp://user:pw@10.0.0.5/stream1\n    stride: 2\n"
        "    threshold: 0.6\n"
        "  - id: lobby\n    source: /data/lobby.mp4\n    enabled: false\n    loop: true\n"
        "model:\n  device: cpu\n  threads: 2\n"
        "storage:\n  dir: /var/lib/clipwatch\n"
        "server:\n  port: 9000\n"
        "alerts:\n  open_frames: 3\n")
    config = load_config(path)
    assert [c.id for c in config.cameras] == ["gate", "lobby"]
    assert config.cameras[0].name == "gate"  # the id when no name is given
    assert config.cameras[0].stride == 2 and config.cameras[0].threshold == 0.6
    assert config.cameras[1].enabled is False and config.cameras[1].loop is True
    assert config.model.threads == 2 and config.server.port == 9000
    assert config.alerts.open_frames == 3 and config.alerts.close_frames == 10


@pytest.mark.parametrize("text, message", [
    ("cameras:\n  - id: a\n    source: x\n    strid: 2\n", "cameras.0.strid"),
    ("cameras:\n  - id: a\n    source: x\n    stride: 11\n", "cameras.0.stride"),
    ("cameras:\n  - id: A B\n    source: x\n", "cameras.0.id"),
    ("cameras:\n  - {id: a, source: x}\n  - {id: a, source: y}\n", "used twice"),
    ("server:\n  port: 70000\n", "server.port"),
    ("modle:\n  device: cpu\n", "modle"),
    ("cameras: [\n", "not valid YAML"),
    ("- just a list\n", "must be a mapping"),
])
def test_bad_configs_are_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_save_then_load_round_trips(tmp_path):
    config = Config()
    config.cameras.append(demo_camera())
    config.server.port = 8123
    path = tmp_path / "out.yaml"
    save_config(config, path)
    again = load_config(path)
    assert again == config
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place
