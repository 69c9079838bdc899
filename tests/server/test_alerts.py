"""AlertTracker: minimum duration, hysteresis, lowest regularity, rate-limited updates, one
alert per event (merge gap)."""

from clipwatch.config import AlertConfig
from clipwatch.server.alerts import AlertTracker, ScoredFrame

RULES = AlertConfig(open_frames=3, close_frames=4, hysteresis=0.05, update_seconds=1.0,
                    merge_seconds=0)
MERGING = RULES.model_copy(update={"merge_seconds": 1.0})


def feed(tracker, values, threshold=0.5, start=0, fps=10.0):
    """Push regularity values as consecutive frames; returns [(frame, kind, alert)]."""
    out = []
    for i, value in enumerate(values, start=start):
        for t in tracker.push(ScoredFrame(i, i / fps, value, threshold, evidence=i)):
            out.append((i, t.kind, t))
    return out


def test_one_noisy_frame_is_not_an_alert():
    tracker = AlertTracker("cam", RULES)
    assert feed(tracker, [0.9, 0.1, 0.9, 0.2, 0.2, 0.9]) == []
    assert not tracker.is_open


def test_alert_opens_at_the_first_low_frame_and_closes_with_hysteresis():
    tracker = AlertTracker("cam", RULES)
    values = [0.9, 0.4, 0.3, 0.45,  # opens on frame 3, started at frame 1
              0.2,                  # new lowest
              0.52, 0.53, 0.52, 0.52, 0.51,  # above threshold but inside the hysteresis margin
              0.6, 0.6, 0.6, 0.6]   # four calm frames close it
    events = feed(tracker, values)
    kinds = [(frame, kind) for frame, kind, _ in events]
    assert kinds[0] == (3, "start")
    assert kinds[-1] == (13, "end")
    start = events[0][2].alert
    assert start.start_frame == 1 and start.worst_frame == 2 and start.lowest_regularity == 0.3
    assert events[0][2].worst == 2  # the evidence of the worst frame comes with the start
    end = events[-1][2].alert
    assert end.lowest_regularity == 0.2 and end.worst_frame == 4
    assert end.ended_at == 13 / 10.0 and end.frames == 3 + 10
    assert not tracker.is_open


def test_updates_are_rate_limited_and_carry_a_new_worst_frame():
    tracker = AlertTracker("cam", RULES)
    values = [0.1] * 3 + [0.3] * 12 + [0.05] + [0.3] * 12
    events = feed(tracker, values)
    updates = [(frame, t) for frame, kind, t in events if kind == "update"]
    # at 10 fps with update_seconds=1: one update per 10 frames at most
    assert [frame for frame, _ in updates] == [12, 22]
    assert updates[0][1].worst is None  # the worst frame did not change before frame 12
    assert updates[1][1].worst == 15 and updates[1][1].alert.lowest_regularity == 0.05


def test_close_ends_an_open_alert_and_nothing_else():
    tracker = AlertTracker("cam", RULES)
    assert tracker.close(5.0) == []
    feed(tracker, [0.1, 0.1, 0.1])
    (end,) = tracker.close(9.0)
    assert end.kind == "end" and end.alert.ended_at == 9.0
    assert not tracker.is_open


def test_an_alert_that_opens_again_within_the_gap_continues_as_the_same_alert():
    tracker = AlertTracker("cam", MERGING)
    values = ([0.1] * 3 + [0.9] * 4  # opens at 2, closes at 6 (held back: the gap)
              + [0.9] * 3 + [0.2] * 3  # opens again at 12, 0.6 s after closing: same alert
              + [0.9] * 4 + [0.9] * 10)  # closes at 16, ends 1.0 s later (frame 26)
    events = feed(tracker, values)
    kinds = [(frame, kind) for frame, kind, _ in events if kind != "update"]
    assert kinds == [(2, "start"), (26, "end")]
    end = events[-1][2].alert
    assert end.start_frame == 0 and end.ended_at == 16 / 10.0  # dated when it closed
    assert end.lowest_regularity == 0.1 and not tracker.is_open


def test_an_alert_after_the_gap_is_a_new_alert():
    tracker = AlertTracker("cam", MERGING)
    values = [0.1] * 3 + [0.9] * 4 + [0.9] * 12 + [0.2] * 3
    kinds = [(frame, kind) for frame, kind, _ in feed(tracker, values)]
    assert kinds == [(2, "start"), (16, "end"), (21, "start")]
    assert tracker.is_open


def test_a_noisy_frame_in_the_gap_does_not_reopen_and_close_dates_the_end_when_calm():
    tracker = AlertTracker("cam", MERGING)
    events = feed(tracker, [0.1] * 3 + [0.9] * 4 + [0.2, 0.9, 0.2, 0.2, 0.9])
    assert [kind for _, kind, _ in events] == ["start"]
    (end,) = tracker.close(5.0)
    assert end.kind == "end" and end.alert.ended_at == 6 / 10.0
    assert not tracker.is_open
