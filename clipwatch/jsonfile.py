"""Small JSON state files written atomically: a crash mid-write leaves the old file whole.

Recordings (recording.json, plan.json), learning jobs (job.json) and a learn's
progress.json are read by other threads and processes while they change, and after a
restart; each is written to a hidden temporary file beside it and renamed over it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)
