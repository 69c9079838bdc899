"""Recorded footage on real frames: chunks the model reads as it reads the live camera, a
size bound, left-out spans, a restart that drops the chunk being written, and the split."""

from __future__ import annotations

import numpy as np
import pytest

from clipwatch.stream.footage import load_clip, load_normal_clips
from clipwatch.stream.preprocess import InputSpec, preprocess
from clipwatch.stream.recording import (
    FootageWriter,
    RecordingError,
    read_info,
    split_chunks,
)
from clipwatch.stream.sources import open_source

SPEC = InputSpec()


@pytest.fixture(scope="module")
def frames(sample_clip):
    with open_source(sample_clip) as source:
        return [f.image for f in source][:90]


def test_chunks_hold_what_the_model_sees_and_read_back_as_normal_clips(frames, tmp_path):
    writer = FootageWriter.create(tmp_path / "rec", "sample", 10.0, SPEC, chunk_frames=20)
    assert all(writer.add(image) for image in frames)
    info = writer.close()
    # 90 frames: four whole chunks; the last 10 are too short to be a clip and are left out
    assert info.chunks == [f"chunk_{k:04d}" for k in range(4)] and info.frames == 80
    assert info.left_out == 10 and read_info(tmp_path / "rec") == info
    clips = load_normal_clips(tmp_path / "rec", SPEC)
    assert [c.name for c in clips] == info.chunks and all(len(c.frames) == 20 for c in clips)
    # Read back through the one preprocessing function: the live frame's input, within JPEG
    # quality 95 (a pixel level or two, out of 255)
    stored = load_clip(tmp_path / "rec" / "chunk_0001", SPEC).astype(np.float32)
    live = np.stack([preprocess(image, SPEC) for image in frames[20:40]])
    levels = np.abs(stored - live).mean() * 255 * SPEC.std  # normalized -> pixel levels
    assert levels < 2.0


def test_the_size_bound_stops_the_recording_not_the_disk(frames, tmp_path):
    writer = FootageWriter.create(tmp_path / "rec", "sample", 10.0, SPEC, chunk_frames=20,
                                  max_bytes=30 * 12_000)
    kept = sum(writer.add(image) for image in frames)
    assert writer.full and kept < len(frames)
    assert not writer.add(frames[0])  # full stays full
    info = writer.close()
    assert info.full and info.bytes <= 30 * 12_000 and info.frames == 20


def test_left_out_frames_end_the_chunk_so_no_clip_spans_them(frames, tmp_path):
    writer = FootageWriter.create(tmp_path / "rec", "sample", 10.0, SPEC, chunk_frames=40)
    for image in frames[:30]:
        writer.add(image)
    writer.leave_out(5)  # an alert was open
    for image in frames[35:60]:
        writer.add(image)
    info = writer.close()
    assert info.chunks == ["chunk_0000", "chunk_0001"] and info.frames == 55
    assert info.left_out == 5


def test_a_restart_carries_on_after_the_last_whole_chunk(frames, tmp_path):
    writer = FootageWriter.create(tmp_path / "rec", "sample", 10.0, SPEC, chunk_frames=20)
    for image in frames[:25]:
        writer.add(image)  # one whole chunk, five frames in memory: lost with the process
    (tmp_path / "rec" / "chunk_0001").mkdir()  # a chunk half written when it died
    again = FootageWriter.reopen(tmp_path / "rec", SPEC)
    assert not (tmp_path / "rec" / "chunk_0001").exists()
    for image in frames[25:45]:
        again.add(image)
    assert again.close().chunks == ["chunk_0000", "chunk_0001"]


def test_bad_recordings_are_refused_in_one_line(frames, tmp_path):
    with pytest.raises(RecordingError, match="not a recording"):
        read_info(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(RecordingError, match="not empty"):
        FootageWriter.create(tmp_path / "busy", "s", 10.0, SPEC)
    with pytest.raises(RecordingError, match="at least 4"):
        split_chunks(["chunk_0000", "chunk_0001", "chunk_0002"])


def test_held_out_chunks_are_spread_over_the_recording():
    chunks = [f"chunk_{k:04d}" for k in range(12)]
    split = split_chunks(chunks)
    assert split.calibrate == ["chunk_0002", "chunk_0008"]
    assert split.judge == ["chunk_0005", "chunk_0011"]
    assert len(split.train) == 8 and not set(split.train) & set(split.calibrate + split.judge)
    small = split_chunks(chunks[:4])
    assert small.calibrate and small.judge and len(small.train) == 2
