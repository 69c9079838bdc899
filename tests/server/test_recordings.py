"""Recording normal footage, below the API: a schedule keeps a minute at a time spread over
the hours asked for and waits between; a gap in the frame numbers ends a chunk; an alert
drops the chunk it interrupts and every frame while it is open. Real frames (the sample
Ped2 clip), real files."""

from __future__ import annotations

import numpy as np
import pytest

from clipwatch.server.recordings import ActiveRecording, RecordingPlan
from clipwatch.stream.preprocess import InputSpec
from clipwatch.stream.recording import FootageWriter, read_info
from clipwatch.stream.sources import open_source


@pytest.fixture(scope="module")
def frames(sample_clip):
    with open_source(sample_clip) as source:
        return [f.image for f in source]


def active(tmp_path, **plan) -> ActiveRecording:
    fields = dict(id="cam-1", camera="cam", minutes=1.0, spread_hours=None, fps=1.0,
                  created_at=1000.0)
    fields.update(plan)
    writer = FootageWriter.create(tmp_path / "rec", "camera cam", fields["fps"], InputSpec(),
                                  chunk_frames=20)
    return ActiveRecording(RecordingPlan(**fields), writer)


def test_a_schedule_records_a_minute_per_slot_and_waits_between(tmp_path, frames):
    # 2 minutes over 2 hours at 1 frame/s: 60 frames at the start, 60 more after an hour.
    rec = active(tmp_path, minutes=2.0, spread_hours=2.0)
    assert rec.plan.bursts == 2 and rec.plan.frames_due(1000.0) == 60
    for k in range(70):
        rec.add(k, 1000.0 + k, frames[k % len(frames)], alerting=False)
    assert rec.plan.state == "waiting" and rec.writer.info.frames == 60
    assert not rec.wants(2000.0) and rec.plan.next_slot(2000.0) == 1000.0 + 3600
    assert rec.wants(1000.0 + 3600)
    for k in range(70):
        rec.add(100 + k, 4600.0 + k, frames[k % len(frames)], alerting=False)
    assert rec.plan.state == "done" and read_info(rec.writer.folder).frames == 120


def test_a_gap_ends_the_chunk_and_an_alert_drops_its_lead_in(tmp_path, frames):
    rec = active(tmp_path)
    index = 0
    for _ in range(25):  # one whole chunk of 20, 5 in progress
        rec.add(index, 1000.0 + index, frames[index], alerting=False)
        index += 1
    index += 3  # frames dropped: the 5 in progress are too few for a chunk
    for _ in range(15):
        rec.add(index, 1000.0 + index, frames[index], alerting=False)
        index += 1
    for _ in range(4):  # an alert opens: its 15-frame lead-in goes with its 4 frames
        rec.add(index, 1000.0 + index, frames[index], alerting=True)
        index += 1
    info = rec.writer.info
    assert info.chunks == ["chunk_0000"] and info.frames == 20
    assert info.left_out == 5 + 15 + 4 and rec.writer.pending == 0
    kept = sorted((rec.writer.folder / "chunk_0000").glob("*.jpg"))
    assert len(kept) == 20


def test_keep_alerts_keeps_the_frames_while_an_alert_is_open(tmp_path, frames):
    rec = active(tmp_path, keep_alerts=True)
    for k in range(20):
        rec.add(k, 1000.0 + k, frames[k], alerting=True)
    assert rec.writer.info.frames == 20 and rec.writer.info.left_out == 0


def test_the_operator_drops_the_chunks_of_the_last_seconds(tmp_path, frames):
    rec = active(tmp_path, minutes=5.0)
    for k in range(65):  # chunks at t 1000-1019, 1020-1039, 1040-1059; 5 in progress
        rec.add(k, 1000.0 + k, frames[k], alerting=False)
    dropped = rec.writer.drop_since(1045.0)
    info = rec.writer.info
    assert dropped == 25 and info.chunks == ["chunk_0000", "chunk_0001"]
    assert not (rec.writer.folder / "chunk_0002").exists()
    for k in range(65, 85):  # the next chunk takes a new name, never a dropped one's
        rec.add(k, 1000.0 + k, frames[k], alerting=False)
    assert rec.writer.info.chunks[-1] == "chunk_0003"
    assert np.isclose(read_info(rec.writer.folder).spans["chunk_0003"][0], 1065.0)
