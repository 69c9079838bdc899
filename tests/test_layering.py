"""Imports point one way (stream -> model -> server), and replay needs no torch (DESIGN.md)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_stream_imports_neither_torch_fastapi_nor_model():
    run = python(
        "import sys, pkgutil, importlib, clipwatch.stream as s\n"
        "for m in pkgutil.iter_modules(s.__path__):\n"
        "    importlib.import_module(f'{s.__name__}.{m.name}')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'fastapi')"
        " or m.startswith(('clipwatch.model', 'clipwatch.server'))]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    assert run.returncode == 0, run.stdout + run.stderr


TORCH_BLOCKER = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked: replay must run without torch")
        return None
sys.meta_path.insert(0, NoTorch())
"""


def test_replay_runs_with_torch_unimportable(tmp_path):
    # A finder that refuses torch, as on a box where it is not installed.
    out = tmp_path / "s.csv"
    run = python(
        TORCH_BLOCKER
        + "from clipwatch.cli import main\n"
        + f"code = main(['replay', '--stride', '10', '--summary', '--out', r'{out}'])\n"
        + "assert 'torch' not in sys.modules\n"
        + "sys.exit(code)\n"
    )
    assert run.returncode == 0, run.stderr
    assert out.is_file()


def test_model_imports_no_server_and_the_server_runs_without_torch(tmp_path):
    run = python(
        TORCH_BLOCKER
        + "import pkgutil, importlib, clipwatch.model as m\n"
        + "for info in pkgutil.iter_modules(m.__path__):\n"
        + "    if info.name not in m.TORCH_MODULES:\n"
        + "        importlib.import_module(f'{m.__name__}.{info.name}')\n"
        + "assert not [n for n in sys.modules if n.startswith('clipwatch.server')]\n"
        + "from clipwatch.config import Config\n"
        + "from clipwatch.server.app import create_app\n"
        + "from fastapi.testclient import TestClient\n"
        + "config = Config()\n"
        + f"config.storage.dir = r'{tmp_path}'\n"
        + "with TestClient(create_app(config)) as client:\n"
        + "    assert client.get('/readyz').json()['ready']\n"
        + "assert 'torch' not in sys.modules\n"
    )
    assert run.returncode == 0, run.stdout + run.stderr
