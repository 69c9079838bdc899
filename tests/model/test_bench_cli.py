"""`clipwatch bench` runs end to end and writes the JSON its readers rely on (its figures
are measurements, reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipwatch", "bench", *args],
                          capture_output=True, text=True, timeout=600)


def test_bench_writes_one_table_and_the_json_schema(tmp_path):
    out = tmp_path / "bench.json"
    run = bench("--variants", "full", "split", "--count", "30", "--json", str(out))
    assert run.returncode == 0, run.stderr
    assert "onnx-fp32 (naive)" in run.stdout and "split+pixelshuffle" in run.stdout
    report = json.loads(out.read_text())
    assert report["naive_onnx_clips_per_s"] > 0 and report["flop_floor_ms"] > 0
    names = [v["name"] for v in report["variants"]]
    assert "onnx-fp32 (naive)" in names and "split+pixelshuffle" in names
    for variant in report["variants"]:
        for key in ("clips_per_s", "frames_per_s_stride1", "latency_p95_ms", "auc_ped2",
                    "peak_memory_mb", "ratio_to_naive", "ratio_to_flop_floor"):
            assert key in variant
        assert variant["frames_per_s_stride1"] > 0 and variant["latency_p95_ms"] > 0
    naive = next(v for v in report["variants"] if v["name"] == "onnx-fp32 (naive)")
    assert naive["ratio_to_naive"] == 1.0
    assert {row["cameras"] for row in report["batching"]} == {1, 2, 4}


def test_bench_refuses_bad_input_in_one_line(tmp_path):
    for args, message in ((["--variants", "warp"], "unknown variant 'warp'"),
                          (["--auc", str(tmp_path / "nope")], "is not a folder"),
                          (["--frames", str(tmp_path / "nope")], "does not exist")):
        run = bench(*args)
        assert run.returncode != 0
        errors = [line for line in run.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and message in errors[0], run.stderr
