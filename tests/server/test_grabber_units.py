"""The grabber's concurrency parts, tested directly and deterministically: no threads, no
wall clock, no sleeps. Times are synthetic, random jitter comes from seeded generators, and
the grabber's read loop runs in the test's own thread against a scripted source.

The end-to-end tests (test_frame_rate, test_faults, test_rtsp) show the same behaviour on a
running service; these pin down the rules themselves: drop-oldest with its count, even
sampling, the measured arrival rate, reconnect backoff, the stall watchdog.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest

from clipwatch.config import CameraConfig
from clipwatch.server import grabber as grabber_module
from clipwatch.server.grabber import (
    MAX_BACKOFF_S,
    Backoff,
    CameraStatus,
    FrameQueue,
    FrameSampler,
    GrabbedFrame,
    Grabber,
)
from clipwatch.stream.sources import Frame, FrameSource

IMAGE = np.zeros((4, 4, 3), np.uint8)


def grabbed(seq: int, segment: int = 1) -> GrabbedFrame:
    return GrabbedFrame(Frame(seq - 1, 0.0, IMAGE), segment, 1000.0 + seq, seq)


def make_grabber(queue_size: int = 20, rng: random.Random | None = None,
                 **camera) -> tuple[Grabber, list[CameraStatus]]:
    statuses: list[CameraStatus] = []
    config = CameraConfig(**{"id": "cam", "source": "rtsp://127.0.0.1:9/none", **camera})
    grabber = Grabber(config, queue_size, on_frame=lambda: None, on_status=statuses.append,
                      rng=rng)
    return grabber, statuses


# -- FrameQueue ----------------------------------------------------------------------------


def test_a_full_queue_drops_its_oldest_frame_and_counts_it() -> None:
    queue = FrameQueue(3)
    assert [queue.put(grabbed(seq)) for seq in range(1, 6)] == [True, True, True, False, False]
    assert queue.dropped == 2
    assert [item.seq for item in queue.drain()] == [3, 4, 5]  # the newest, in order
    assert queue.drain() == []
    assert queue.put(grabbed(6)) and queue.dropped == 2  # room again: nothing dropped
    queue.put(grabbed(7))
    queue.put(grabbed(8))
    queue.put(grabbed(9))
    assert queue.dropped == 3  # the count accumulates across drains
    # the seq jump (6 gone) is how the scorer sees the gap the drop left
    assert [item.seq for item in queue.drain()] == [7, 8, 9]


# -- FrameSampler ----------------------------------------------------------------------------


def kept(sampler: FrameSampler, times: list[float]) -> list[int]:
    return [i for i, t in enumerate(times) if sampler.take(t)]


def test_without_a_cap_every_frame_is_kept_and_the_rate_is_measured() -> None:
    sampler = FrameSampler()
    assert sampler.fps_in is None
    times = [i / 25 for i in range(50)]
    assert kept(sampler, times) == list(range(50))
    assert sampler.fps_in == pytest.approx(25.0)
    sampler.take(times[-1])  # the same timestamp again: no rate from a zero interval
    assert sampler.fps_in == pytest.approx(25.0)


def test_the_measured_rate_follows_a_change_smoothly() -> None:
    sampler = FrameSampler()
    t = 0.0
    for _ in range(100):
        sampler.take(t)
        t += 0.1
    assert sampler.fps_in == pytest.approx(10.0)
    sampler.take(t + 0.05 - 0.1)  # one frame at 20 fps does not swing the estimate
    assert 10.0 < sampler.fps_in < 12.0
    t += 0.05 - 0.1
    for _ in range(60):  # the camera now runs at 20 fps
        t += 0.05
        sampler.take(t)
    assert sampler.fps_in == pytest.approx(20.0, rel=0.01)


def test_sampling_keeps_every_kth_frame_evenly() -> None:
    sampler = FrameSampler(max_fps=25.0)
    times = [i / 100 for i in range(200)]  # 100 fps for 2 s
    assert kept(sampler, times) == list(range(0, 200, 4))
    assert sampler.fps_in == pytest.approx(100.0)


def test_sampling_at_a_rate_that_does_not_divide_stays_even() -> None:
    sampler = FrameSampler(max_fps=20.0)
    times = [i / 30 for i in range(300)]  # 30 fps for 10 s, kept at 20
    taken = kept(sampler, times)
    assert len(taken) == pytest.approx(200, abs=1)
    gaps = set(np.diff(taken).tolist())
    assert gaps <= {1, 2}  # never a burst, never a hole


def test_sampling_holds_its_grid_through_arrival_jitter() -> None:
    rng = random.Random(7)
    sampler = FrameSampler(max_fps=10.0)
    times = [i / 30 + rng.uniform(-0.004, 0.004) for i in range(300)]  # 30 fps, jittered
    taken = kept(sampler, times)
    assert len(taken) == pytest.approx(100, abs=1)  # 10 s at 10 fps
    assert set(np.diff(taken).tolist()) <= {2, 3, 4}


def test_a_schedule_that_fell_behind_restarts_instead_of_catching_up() -> None:
    sampler = FrameSampler(max_fps=10.0)
    before = [i / 100 for i in range(50)]  # 0.00 .. 0.49 s
    after = [2.0 + i / 100 for i in range(100)]  # the camera paused 1.5 s, then 2.00 .. 2.99
    assert len(kept(sampler, before)) == 5
    taken = [after[i] for i in kept(sampler, after)]
    # Catching up would keep every frame until the schedule reached 2.0 s again (15 in a
    # row); restarting keeps the first frame back and then the even rate.
    assert taken[0] == 2.0
    assert len(taken) <= 11
    assert min(np.diff(taken)) >= 0.05 - 1e-9  # at least half a period apart
    assert np.diff(taken)[1:] == pytest.approx(0.1)


def test_limit_rate_never_exceeds_the_cameras_own_cap() -> None:
    grabber, _ = make_grabber(max_fps=5.0)
    assert grabber.sample_fps == 5.0
    grabber.limit_rate(8.0)
    assert grabber.sample_fps == 5.0
    grabber.limit_rate(3.0)
    assert grabber.sample_fps == 3.0
    grabber.limit_rate(None)  # lifted: back to the camera's own cap
    assert grabber.sample_fps == 5.0
    free, _ = make_grabber()
    free.limit_rate(12.0)
    assert free.sample_fps == 12.0
    free.limit_rate(None)
    assert free.sample_fps is None


# -- reconnect backoff ---------------------------------------------------------------------


class FixedJitter:
    """A random source that always answers one end of the range."""

    def __init__(self, end: int) -> None:
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return (a, b)[self.end]


def test_backoff_doubles_from_one_second_to_thirty_within_its_jitter() -> None:
    low = Backoff()
    assert [low.next_delay(FixedJitter(0)) for _ in range(7)] == \
        pytest.approx([0.8, 1.6, 3.2, 6.4, 12.8, 24.0, 24.0])
    high = Backoff()
    assert [high.next_delay(FixedJitter(1)) for _ in range(7)] == \
        pytest.approx([1.2, 2.4, 4.8, 9.6, 19.2, 36.0, 36.0])
    assert MAX_BACKOFF_S == 30.0


def test_backoff_with_a_seeded_generator_is_reproducible_and_bounded() -> None:
    bases = [1, 2, 4, 8, 16, 30, 30, 30]
    first = Backoff()
    delays = [first.next_delay(random.Random(3)) for _ in bases]  # one fresh rng per call
    for delay, base in zip(delays, bases, strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    rng_a, rng_b = random.Random(11), random.Random(11)
    a, b = Backoff(), Backoff()
    assert [a.next_delay(rng_a) for _ in bases] == [b.next_delay(rng_b) for _ in bases]


def test_backoff_jitter_spreads_cameras_that_failed_together() -> None:
    firsts = [Backoff().next_delay(random.Random(seed)) for seed in range(200)]
    assert min(firsts) >= 0.8 and max(firsts) <= 1.2
    assert min(firsts) < 0.85 and max(firsts) > 1.15  # the whole range is used
    assert len({round(d, 3) for d in firsts}) > 150  # not in step


def test_backoff_reset_starts_again_at_one_second() -> None:
    backoff, rng = Backoff(), FixedJitter(0)
    for _ in range(5):
        backoff.next_delay(rng)
    backoff.reset()
    assert backoff.next_delay(rng) == pytest.approx(0.8)
    assert backoff.next_delay(rng) == pytest.approx(1.6)


class ScriptedStop:
    """Stands in for the grabber's stop event: records the waits, stops when told."""

    def __init__(self) -> None:
        self.stopped = False
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return self.stopped

    def set(self) -> None:
        self.stopped = True

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.stopped


def test_the_run_loop_backs_off_and_resets_after_a_delivered_frame() -> None:
    grabber, statuses = make_grabber(rng=random.Random(5))
    stop = ScriptedStop()
    # (delivered any frame, failure, is live) per connection attempt
    script = [(False, "refused", True), (False, "refused", True), (False, "refused", True),
              (True, "the stream ended or stopped answering", True),
              (False, "refused", True), (False, "refused", True)]
    segments: list[int] = []

    def read_once(segment: int) -> tuple[bool, str | None, bool]:
        segments.append(segment)
        result = script[len(segments) - 1]
        if len(segments) == len(script):
            stop.set()  # the service stops during the last attempt
        return result

    grabber._stop = stop
    grabber._read_once = read_once
    grabber._run()  # in this thread: it returns once stopped

    assert segments == [1, 2, 3, 4, 5, 6]  # each attempt a new segment
    expected = Backoff()
    rng = random.Random(5)
    bases = [1, 2, 4, 1, 2]  # the frame delivered on attempt 4 reset the backoff
    want = []
    for i, base in enumerate(bases):
        if i == 3:
            expected.reset()
        want.append(expected.next_delay(rng))
        assert 0.8 * base <= want[-1] <= 1.2 * base
    assert stop.waits == want
    # lost after each failed attempt, connecting again after each wait (it starts out
    # connecting); stopped during the sixth attempt, it neither waits nor reports more
    assert [s.state for s in statuses] == ["lost", "connecting"] * 5
    assert statuses[6].reason == "the stream ended or stopped answering"


def test_the_run_loop_ends_a_recording_and_restarts_a_looping_one_at_once() -> None:
    grabber, statuses = make_grabber(rng=random.Random(1))
    grabber._stop = ScriptedStop()
    grabber._read_once = lambda segment: (True, None, False)  # a file read to its end
    grabber._run()
    assert statuses[-1].state == "ended" and grabber._stop.waits == []

    looping, _ = make_grabber(rng=random.Random(1), loop=True)
    stop, attempts = ScriptedStop(), []

    def read_once(segment: int) -> tuple[bool, str | None, bool]:
        attempts.append(segment)
        if len(attempts) == 3:
            stop.set()
        return True, None, False

    looping._stop, looping._read_once = stop, read_once
    looping._run()
    assert attempts == [1, 2, 3] and stop.waits == []  # no backoff between loops


# -- the read loop: counts, sampling and drops together ------------------------------------


class Clock:
    """The grabber module's `time`, under the test's control."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


class ScriptedLiveSource(FrameSource):
    """A live stream of `count` frames at `fps`, advancing the test's clock per frame."""

    def __init__(self, clock: Clock, count: int, fps: float) -> None:
        super().__init__("scripted", None, None)
        self.clock, self.count, self.fps_real = clock, count, fps

    @property
    def is_live(self) -> bool:
        return True

    def _frames(self) -> Iterator[Frame]:
        for i in range(self.count):
            self.clock.now = i / self.fps_real
            yield Frame(i, self.clock.now, IMAGE)


def test_every_frame_read_is_counted_as_queued_sampled_out_or_dropped(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(grabber_module, "time", clock)
    monkeypatch.setattr(grabber_module, "open_source",
                        lambda *args, **kwargs: ScriptedLiveSource(clock, 40, 100.0))
    grabber, statuses = make_grabber(queue_size=4, max_fps=25.0)
    woken = []
    grabber._on_frame = lambda: woken.append(clock.now)

    delivered, reason, live = grabber._read_once(segment=1)  # nobody drains the queue

    assert (delivered, live) == (True, True)
    assert reason == "the stream ended or stopped answering"
    assert grabber.frames_in == 40
    assert grabber.frames_sampled_out == 30  # 100 fps kept at 25: every 4th frame
    assert len(woken) == 10
    assert grabber.queue.dropped == 6  # 10 kept, 4 fit
    items = grabber.queue.drain()
    assert [item.seq for item in items] == [7, 8, 9, 10]
    assert [item.frame.index for item in items] == [24, 28, 32, 36]
    assert {item.segment for item in items} == {1}
    assert grabber.fps_in == pytest.approx(100.0)
    assert grabber.last_frame_at == pytest.approx(0.39)
    assert statuses[-1].state == "live"


# -- the stall watchdog ----------------------------------------------------------------------


def test_check_stall_marks_a_silent_live_camera_lost_once() -> None:
    grabber, statuses = make_grabber(stall_timeout_s=5.0)
    assert not grabber.check_stall(now=1000.0)  # connecting, no frame yet
    grabber.last_frame_at = 100.0
    assert not grabber.check_stall(now=1000.0)  # not live: reconnecting is not a stall
    grabber._set_status("live", None)
    assert not grabber.check_stall(now=104.9)
    assert grabber.status.state == "live"
    assert grabber.check_stall(now=105.0)
    assert grabber.status.state == "lost"
    assert grabber.status.reason == "no frame for 5 s (stalled)"
    assert statuses[-1] == grabber.status
    assert not grabber.check_stall(now=200.0)  # already lost: reported once
    assert len([s for s in statuses if s.state == "lost"]) == 1


def test_check_stall_needs_a_frame_first() -> None:
    grabber, _ = make_grabber(stall_timeout_s=1.0)
    grabber._set_status("live", None)
    assert grabber.last_frame_at is None
    assert not grabber.check_stall(now=1e9)
    assert grabber.status.state == "live"


def test_a_burst_after_a_stall_does_not_send_the_measured_rate_through_the_roof() -> None:
    sampler = FrameSampler()
    t = 0.0
    for _ in range(50):  # 20 fps
        sampler.take(t)
        t += 0.05
    t += 2.0  # a stall, then the frames it held back arrive at once
    for _ in range(10):
        sampler.take(t)
        t += 0.001
    assert sampler.fps_in < 40.0
