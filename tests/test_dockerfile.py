"""Dockerfile.cuda, checked as far as can be without a Docker engine: what it copies exists,
what it runs parses as a clipwatch command, it runs as a non-root user, and its health check
asks a route the app has on the port it exposes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from clipwatch.cli import build_parser
from clipwatch.config import Config, ServerConfig
from clipwatch.server.app import create_app

REPO = Path(__file__).resolve().parents[1]
TEXT = (REPO / "Dockerfile.cuda").read_text()
# Instructions with their continuation lines joined.
INSTRUCTIONS = re.sub(r"\\\n\s*", " ", "\n".join(
    line for line in TEXT.splitlines() if not line.lstrip().startswith("#"))).splitlines()


def instructions(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in INSTRUCTIONS if line.startswith(name + " ")]


def test_every_copied_path_exists_in_the_repository():
    copies = instructions("COPY")
    assert copies
    for args in copies:
        sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_the_default_command_is_a_valid_clipwatch_serve():
    (entrypoint,) = instructions("ENTRYPOINT")
    (cmd,) = instructions("CMD")
    import json

    assert json.loads(entrypoint) == ["clipwatch"]
    args = build_parser().parse_args(json.loads(cmd))
    assert args.command == "serve" and args.device == "cuda"
    assert args.storage in [v.strip('"') for v in instructions("VOLUME")[0].strip("[]").split(",")]
    assert 'clipwatch = "clipwatch.cli:main"' in (REPO / "pyproject.toml").read_text()


def test_it_runs_as_a_non_root_user():
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert f"useradd --create-home --uid 10001 {users[-1]}" in TEXT


def test_the_health_check_asks_the_apps_readiness_route_on_the_exposed_port(tmp_path):
    (health,) = instructions("HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", health)
    assert url, health
    port, route = int(url.group(1)), url.group(2)
    assert instructions("EXPOSE") == [str(port)]
    assert port == ServerConfig().port
    config = Config()
    config.storage.dir = tmp_path
    paths = create_app(config).openapi()["paths"]
    assert route in paths


def test_the_example_config_loads_and_may_listen_beyond_loopback():
    from clipwatch.config import load_config
    from clipwatch.server.run import check_exposure

    config = load_config(REPO / "docs" / "clipwatch.example.yaml")
    assert config.server.host == "0.0.0.0" and config.auth.tokens and config.auth.users
    check_exposure(config)
