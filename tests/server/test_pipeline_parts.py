"""The pipeline's parts on their own, without threads or clocks: the frame sequencer and the
alert outbox (store, then broadcast; retried in order while the store refuses)."""

from __future__ import annotations

import numpy as np
import pytest
from store_helpers import alert_transitions

from clipwatch.config import AlertConfig
from clipwatch.server import outbox as outbox_module
from clipwatch.server.alerts import AlertTracker
from clipwatch.server.event_store import EventStore, StoreError
from clipwatch.server.grabber import GrabbedFrame
from clipwatch.server.outbox import AlertOutbox
from clipwatch.server.sequencer import FrameSequencer
from clipwatch.stream.sources import Frame


def grabbed(index: int, segment: int, seq: int) -> GrabbedFrame:
    return GrabbedFrame(Frame(index, index / 10, np.zeros((4, 4), np.uint8)), segment,
                        1000.0 + seq, seq)


def test_the_sequencer_numbers_frames_and_finds_gaps():
    sequencer = FrameSequencer()
    taken = [sequencer.take(grabbed(i, 1, i + 1)) for i in range(3)]
    assert [(f.index, gap) for f, gap in taken] == [(1, False), (2, False), (3, False)]
    # A queue drop (seq jumps), then a reconnect (new segment, source index from 0).
    frame, gap = sequencer.take(grabbed(5, 1, 6))
    assert (frame.index, gap) == (4, True)
    frame, gap = sequencer.take(grabbed(0, 2, 7))
    assert (frame.index, gap) == (5, True)
    frame, gap = sequencer.take(grabbed(1, 2, 8))
    assert (frame.index, frame.timestamp, gap) == (6, 0.1, False)  # the source's own time
    # Each frame's origin is kept until it is scored or forgotten: bounded by what is in flight.
    assert sequencer.in_flight == 6
    origin = sequencer.origin(5)
    assert (origin.index, origin.captured_at) == (0, 1007.0)
    sequencer.forget([1, 2, 3, 99])
    assert sequencer.in_flight == 2
    with pytest.raises(KeyError):
        sequencer.origin(5)  # already taken


class RefusingStore(EventStore):
    """The real store, refusing writes while `refusing` is set (as a full disk would)."""

    refusing = False

    def record(self, kind, alert, images=None):
        if self.refusing:
            raise StoreError("disk full (test)")
        return super().record(kind, alert, images)


def test_alerts_are_stored_then_broadcast_and_wait_in_order_while_the_store_refuses(tmp_path):
    store = RefusingStore(tmp_path)
    sent: list[dict] = []
    ids: list[tuple[float, int]] = []
    tracker = AlertTracker("cam", AlertConfig(open_frames=2, close_frames=2, update_seconds=0.001,
                                              merge_seconds=0))
    outbox = AlertOutbox("cam", store, sent.append, 80,
                         on_stored=lambda at, i: (ids.append((at, i)), tracker.set_id(i)))
    store.refusing = True
    outbox.send(alert_transitions(tracker, [0.9, 0.1, 0.1, 0.05]))
    assert sent == [] and outbox.waiting == 2  # start, then an update to a lower value
    store.refusing = False
    outbox.send(alert_transitions(tracker, [0.9, 0.9], start=4))  # the alert ends
    kinds = [m["event"] for m in sent]
    assert kinds[:2] == ["start", "update"] and kinds[-1] == "end" and len(kinds) >= 3
    assert [m["seq"] for m in sent] == sorted(m["seq"] for m in sent)
    event_id = sent[0]["alert"]["id"]
    # Transitions queued before their start was stored got its id once it was.
    assert {m["alert"]["id"] for m in sent} == {event_id} and ids == [(101.0, event_id)]
    events, total = store.list()
    assert total == 1 and events[0]["state"] == "closed"
    assert events[0]["snapshot_url"]  # the worst frame's JPEG was stored with it
    assert outbox.waiting == 0 and outbox.dropped == 0


def test_the_outbox_is_bounded_and_says_what_it_dropped(tmp_path, monkeypatch):
    store = RefusingStore(tmp_path)
    store.refusing = True
    outbox = AlertOutbox("cam", store, lambda m: None, 80, max_unstored=3)
    tracker = AlertTracker("cam", AlertConfig(open_frames=1, close_frames=1, update_seconds=0.001,
                                              merge_seconds=0))
    transitions = alert_transitions(tracker, [0.1, 0.9, 0.1, 0.9, 0.1])  # 3 starts, 2 ends
    outbox.send(transitions)
    assert outbox.waiting == 3 and outbox.dropped == 2
    # The map of event ids for late transitions stays bounded too.
    monkeypatch.setattr(outbox_module, "MAX_EVENT_IDS", 2)
    store.refusing = False
    outbox.retry()
    assert outbox.waiting == 0 and len(outbox._event_ids) <= 2
