"""Fixtures shared by the whole suite: where the real data lives.

`../shared/data` (beside the repository) holds the full development data and is present in
development and CI; a fresh clone has only the small sample shipped under `samples/`.
PostgreSQL (the cluster mode's event store) runs as a real throwaway server (pg_server.py),
one per session, with a fresh database per test that asks for one.
"""

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, postgres_bin

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SAMPLES = REPO_ROOT / "samples"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it are skipped where it is absent (a fresh clone)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            # CI always has ../shared beside the clone: a missing one is a broken setup.
            pytest.fail(f"shared data not found at {SHARED_DATA} in CI")
        pytest.skip(f"shared data not found at {SHARED_DATA} (fresh clone without ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """UCSD Ped2 test clip 1 (180 JPEG frames) shipped in the repository."""
    clip = SAMPLES / "ucsd_ped2" / "testing" / "frames" / "01"
    assert clip.is_dir(), f"the repository's sample clip is missing: {clip}"
    return clip


def _missing(what: str) -> None:
    """Fail in CI (where everything is installed: a missing piece is a broken setup), skip
    elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} in CI")
    pytest.skip(what)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session, in a folder of its own under the system's
    temporary folder (the `postgres` user must reach it when the tests run as root)."""
    if postgres_bin() is None:
        _missing("PostgreSQL server binaries not found (Debian's postgresql package: "
                 "scripts/system_deps.sh)")
    folder = Path(tempfile.mkdtemp(prefix="clipwatch-pg-"))
    server = PostgresServer(folder)
    try:
        yield server.start()
    finally:
        server.stop("immediate")  # throwaway: no checkpoint needed
        shutil.rmtree(folder, ignore_errors=True)


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    try:
        import psycopg  # noqa: F401  (the store's driver: clipwatch[cluster])
    except ImportError:
        _missing("psycopg is not installed (pip install -e '.[cluster]')")
    return postgres_server.create_database(f"test_{os.getpid()}_{next(_databases)}")
