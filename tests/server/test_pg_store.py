"""PostgresEventStore beyond the shared contract (test_store_contract.py), on real servers:
the server restarts while a camera's outbox sends alerts (they wait, then are stored in order,
none lost, none twice: the promise the SQLite store keeps for a full disk); two processes
write one database (seqs visible in commit order, without gaps; each hears the other through
NOTIFY); a listener whose connection is cut catches up; an unreachable URL is a one-line
StoreError."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pg_server import PostgresServer, free_port

try:
    import psycopg
except ImportError:  # clipwatch[cluster] not installed: a broken setup in CI, a skip elsewhere
    if os.environ.get("CI"):
        raise
    pytest.skip("psycopg is not installed (pip install -e '.[cluster]')",
                allow_module_level=True)

from store_helpers import alert, alert_transitions

from clipwatch.config import AlertConfig, Config
from clipwatch.server.alerts import AlertTracker
from clipwatch.server.event_store import StoreError, open_event_store
from clipwatch.server.outbox import AlertOutbox
from clipwatch.server.pg_store import LISTENER_NAME, PostgresEventStore


def wait_until(condition, timeout: float = 15.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def own_server(postgres_url) -> Iterator[PostgresServer]:
    """A server of the test's own, to restart (postgres_url: the same skip or failure when
    PostgreSQL or psycopg is missing)."""
    folder = Path(tempfile.mkdtemp(prefix="clipwatch-pg-"))
    server = PostgresServer(folder)
    try:
        yield server.start()
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def test_alerts_wait_while_the_server_restarts_and_are_stored_in_order(own_server, tmp_path):
    store = PostgresEventStore(own_server.create_database("alerts"), tmp_path / "store")
    heard: list[int] = []
    store.add_listener(heard.append)
    sent: list[dict] = []
    tracker = AlertTracker("cam", AlertConfig(open_frames=2, close_frames=2,
                                              update_seconds=0.001, merge_seconds=0))
    outbox = AlertOutbox("cam", store, sent.append, 80,
                         on_stored=lambda at, event_id: tracker.set_id(event_id))
    outbox.send(alert_transitions(tracker, [0.9, 0.1, 0.1]))
    assert [m["event"] for m in sent] == ["start"] and outbox.waiting == 0

    own_server.stop("fast")  # every connection cut, the listener's too
    queued = alert_transitions(tracker, [0.05, 0.02, 0.9, 0.9, 0.1, 0.1, 0.01], start=3)
    kinds = [t.kind for t in queued]
    assert "start" in kinds[kinds.index("end"):]  # the first alert ends, a second starts
    outbox.send(queued)
    outbox.retry()  # as the inference loop does on its next frames
    assert outbox.waiting == len(queued)  # held, in order
    assert len(sent) == 1  # nothing broadcast before it is stored
    problem = store.check()  # what /readyz says meanwhile: one line, with why
    assert "cannot reach the event database" in problem and "\n" not in problem
    with pytest.raises(StoreError) as refused:
        store.last_seq()
    assert "\n" not in str(refused.value)

    own_server.start()
    back = time.monotonic()  # the server accepts connections again
    while outbox.waiting:
        outbox.retry()
        time.sleep(0.005)
    recovery = time.monotonic() - back
    print(f"\nPostgreSQL restart: {len(queued)} waiting alerts stored {recovery * 1000:.0f} ms "
          "after the server accepted connections again")
    assert recovery < 5.0

    stored = store.messages_since(0)
    assert [m["seq"] for m in sent] == [m["seq"] for m in stored]  # all, in order, once
    assert [m["event"] for m in sent] == ["start", *kinds]
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
    assert outbox.dropped == 0 and store.check() is None
    # the listening thread reconnected: it hears the catch-up, then new messages
    wait_until(lambda: heard and heard[-1] == stored[-1]["seq"], what="the listener")
    assert heard == sorted(set(heard))
    seq, _ = store.acknowledge(sent[0]["alert"]["id"], "seen")
    wait_until(lambda: heard[-1] == seq, what="the listener after the restart")
    store.close()


WRITER = """
import sys
from clipwatch.server.alerts import Alert
from clipwatch.server.pg_store import PostgresEventStore

url, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = PostgresEventStore(url, folder)
for i in range(count):
    alert = Alert(camera="far", started_at=1000.0 + i, start_frame=i, lowest_regularity=0.2,
                  worst_frame=i, worst_at=1000.0 + i, threshold=0.5, frames=1,
                  updated_at=1000.0 + i)
    _, event = store.record("start", alert)
    store.record("end", Alert(**{**alert.__dict__, "id": event["id"], "ended_at": 1001.0 + i}))
store.close()
"""


def test_two_processes_share_one_sequence_and_hear_each_other(postgres_url, tmp_path):
    count = 40
    store = PostgresEventStore(postgres_url, tmp_path / "store")
    heard: list[int] = []
    store.add_listener(heard.append)
    # Another process (as another machine's camera worker would) ...
    other = subprocess.Popen([sys.executable, "-c", WRITER, postgres_url,
                              str(tmp_path / "store"), str(count)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # ... while this one stores alerts too, and a reader resumes by seq all along.
    def write_near():
        for i in range(count):
            _, event = store.record("start", alert(camera="near", started=2000.0 + i))
            store.record("end", replace(alert(camera="near", started=2000.0 + i),
                                        id=event["id"], ended_at=2001.0 + i))

    writer = threading.Thread(target=write_near)
    writer.start()
    reader = PostgresEventStore(postgres_url, tmp_path / "store")
    seen: list[int] = []
    while writer.is_alive() or other.poll() is None:
        # What a resuming client is sent is always the next seqs: a seq committed late
        # would show here as a gap filled afterwards (and be skipped by a real client).
        seen += [m["seq"] for m in reader.messages_since(seen[-1] if seen else 0)]
        assert seen == list(range(1, len(seen) + 1))
        time.sleep(0.005)
    writer.join()
    output, _ = other.communicate(timeout=60)
    assert other.returncode == 0, output

    total = 4 * count
    seen += [m["seq"] for m in reader.messages_since(seen[-1] if seen else 0)]
    assert seen == list(range(1, total + 1))
    messages = reader.messages_since(0, limit=total)
    for camera in ("far", "near"):
        kinds = [m["event"] for m in messages if m["alert"]["camera"] == camera]
        assert kinds == ["start", "end"] * count
    # The listener in this process heard every message, the other process's included, once.
    wait_until(lambda: heard and heard[-1] == total, what="the listener")
    assert heard == list(range(1, total + 1))
    reader.close()
    store.close()


def test_a_listener_whose_connection_is_cut_hears_what_was_stored_meanwhile(postgres_url,
                                                                            tmp_path):
    store = PostgresEventStore(postgres_url, tmp_path / "store")
    heard: list[int] = []
    store.add_listener(heard.append)
    writer = PostgresEventStore(postgres_url, tmp_path / "store")
    first, _ = writer.record("start", alert())
    wait_until(lambda: heard == [first], what="the first message")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = %s AND datname = current_database()",
                      (LISTENER_NAME,))
    # stored before the listener's thread reconnects (it waits a little first)
    seqs = [writer.record("start", alert(started=200.0 + i))[0] for i in range(3)]
    wait_until(lambda: heard[-1] == seqs[-1], what="the catch-up")
    assert heard[0] == first and heard == sorted(set(heard))  # none told twice
    later, _ = writer.record("start", alert(started=300.0))
    wait_until(lambda: heard[-1] == later, what="a message after the reconnect")
    writer.close()
    store.close()


def test_an_unreachable_database_is_a_one_line_store_error(postgres_url, tmp_path):
    nobody = f"postgresql://clipwatch:s3cret@127.0.0.1:{free_port()}/events"
    with pytest.raises(StoreError) as refused:
        PostgresEventStore(nobody, tmp_path / "store")
    message = str(refused.value)
    assert message.startswith("cannot open the event store at postgresql://clipwatch:***@"
                              "127.0.0.1:") and "refused" in message
    assert "\n" not in message and "s3cret" not in message
    for bad in ("postgresql://127.0.0.1:notaport/events", "postgresql://[::1/x"):
        with pytest.raises(StoreError, match="cannot open the event store"):
            PostgresEventStore(bad, tmp_path / "store")
    # a database that does not exist on a server that does
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError, match="no_such_database"):
        PostgresEventStore(missing, tmp_path / "store")


def test_the_first_call_after_a_restart_works_on_a_fresh_connection(own_server, tmp_path):
    store = PostgresEventStore(own_server.create_database("alerts"), tmp_path / "store")
    seq, event = store.record("start", alert())
    own_server.restart()  # the store's connection is dead, and it does not know yet
    assert store.get(event["id"])["state"] == "open"  # a read, on a new connection
    own_server.restart()
    assert store.record("end", alert(id=event["id"], ended_at=109.0))[0] == seq + 1
    assert store.check() is None
    store.close()


def test_cluster_mode_opens_the_postgresql_store(postgres_url, tmp_path):
    config = Config(cluster={"database": postgres_url})
    config.storage.dir = tmp_path
    store = open_event_store(config)
    assert isinstance(store, PostgresEventStore) and store.folder == tmp_path
    assert store.last_seq() == 0 and not (tmp_path / "events.db").exists()
    store.close()
