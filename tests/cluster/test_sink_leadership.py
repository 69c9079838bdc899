"""The alert sinks of a cluster site run in one web process: the one holding PostgreSQL's
advisory lock; when it goes, another takes over (a real PostgreSQL server)."""

from __future__ import annotations

import time

import pytest

from clipwatch.cluster.leadership import SinkLeadership


class Sinks:
    """What the leadership drives of a SinkManager: start and stop, counted."""

    def __init__(self) -> None:
        self.starts = self.stops = 0

    def start(self) -> None:
        self.starts += 1

    def stop(self) -> None:
        self.stops += 1


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)


def test_one_web_process_runs_the_sinks_and_another_takes_over_when_it_goes(postgres_url):
    first_sinks, second_sinks = Sinks(), Sinks()
    first = SinkLeadership(postgres_url, first_sinks, retry_s=0.2)
    second = SinkLeadership(postgres_url, second_sinks, retry_s=0.2)
    first.start()
    wait_until(lambda: first.leading, 10)
    second.start()
    try:
        time.sleep(1.0)  # several tries: the lock is held
        assert not second.leading and second_sinks.starts == 0
        assert first_sinks.starts == 1
        first.stop()  # the leading process goes (its connection, and so the lock, with it)
        assert first_sinks.stops == 1
        wait_until(lambda: second.leading, 5)
        assert second_sinks.starts == 1
    finally:
        second.stop()
    assert second_sinks.stops == 1


def test_a_leader_that_loses_the_database_stops_its_sinks(postgres_url, postgres_server):
    sinks = Sinks()
    leader = SinkLeadership(postgres_url, sinks, retry_s=0.2)
    leader.start()
    try:
        wait_until(lambda: leader.leading, 10)
        postgres_server.restart()  # the lock goes with the connection
        wait_until(lambda: sinks.stops >= 1, 10)
        wait_until(lambda: leader.leading and sinks.starts == 2, 20)  # and is taken again
    finally:
        leader.stop()
