"""Fixtures shared by the whole suite: where the real data lives.

`../shared/data` (beside the repository) holds the full development data and is present in
development and CI; a fresh clone has only the small sample shipped under `samples/`.
"""

import os
from pathlib import Path

import pytest

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
