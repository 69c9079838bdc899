"""ClipBuffer: windows, strides, every frame scored exactly once, resets, bad strides."""

import numpy as np
import pytest

from clipwatch.errors import ClipwatchError
from clipwatch.stream.clip_buffer import ClipBuffer


def run(buffer: ClipBuffer, n: int) -> list:
    clips = []
    for i in range(n):
        frame = np.full((4, 4), i, dtype=np.float32)  # pixel value = index, to check stacking
        clip = buffer.push(i, frame)
        if clip is not None:
            clips.append(clip)
    last = buffer.flush()
    return clips + ([last] if last is not None else [])


def scored_indices(clips) -> list[int]:
    return [clip.indices[p] for clip in clips for p in clip.new_positions]


def test_stride_one_emits_a_clip_per_frame_once_full():
    clips = run(ClipBuffer(10, 1), 25)
    assert [c.end_index for c in clips] == list(range(9, 25))
    first = clips[0]
    assert first.frames.shape == (10, 1, 4, 4)
    assert first.frames.dtype == np.float32
    assert list(first.frames[:, 0, 0, 0]) == list(range(10))  # frames in source order
    assert first.new == 10  # the first window scores all its frames
    assert all(c.new == 1 for c in clips[1:])


@pytest.mark.parametrize("stride", [1, 2, 3, 7, 10])
@pytest.mark.parametrize("n", [10, 11, 23, 180])
def test_every_frame_is_scored_exactly_once(stride, n):
    clips = run(ClipBuffer(10, stride), n)
    assert scored_indices(clips) == list(range(n))
    for clip in clips:
        assert clip.indices == tuple(range(clip.end_index - 9, clip.end_index + 1))


def test_stride_three_windows():
    clips = run(ClipBuffer(10, 3), 19)
    # 9 ends the first window; then every 3rd frame; 19 frames end at 18 exactly.
    assert [c.end_index for c in clips] == [9, 12, 15, 18]
    assert [c.new for c in clips] == [10, 3, 3, 3]


def test_flush_scores_the_tail_that_no_stride_reached():
    clips = run(ClipBuffer(10, 4), 15)
    assert [c.end_index for c in clips] == [9, 13, 14]
    assert clips[-1].new == 1


def test_too_few_frames_give_no_clip():
    assert run(ClipBuffer(10, 1), 9) == []


def test_reset_starts_a_new_window():
    buffer = ClipBuffer(10, 1)
    for i in range(12):
        buffer.push(i, np.zeros((2, 2), np.float32))
    buffer.reset()
    assert len(buffer) == 0
    emitted = [buffer.push(i, np.zeros((2, 2), np.float32)) for i in range(100, 110)]
    assert all(c is None for c in emitted[:-1])
    assert emitted[-1].indices == tuple(range(100, 110))


@pytest.mark.parametrize("stride", [0, -1, 11, 1000])
def test_bad_stride_is_refused(stride):
    with pytest.raises(ClipwatchError, match="stride must be between 1 and 10"):
        ClipBuffer(10, stride)


def test_unscored_lists_the_frames_no_clip_has_taken():
    buffer = ClipBuffer(length=4, stride=3)
    for i in range(4):
        buffer.push(i, np.zeros((2, 2), np.float32))  # the first full window is emitted
    assert buffer.unscored() == ()
    buffer.push(4, np.zeros((2, 2), np.float32))
    buffer.push(5, np.zeros((2, 2), np.float32))
    assert buffer.unscored() == (4, 5)
    buffer.reset()
    assert buffer.unscored() == ()
