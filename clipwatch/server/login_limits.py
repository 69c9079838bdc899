"""How many wrong passwords a login name, and a client address, may try: then back off.

Each key (a login name, a client address) may fail `free` times; each failure after that
makes it wait, 1 backoff doubling to `backoff_max_s`. While it waits, its attempts are
refused (429 with Retry-After) before any password is checked, so they cost no hashing.
Attempts in flight count: no more may be in flight than failures are left, so eight
parallel guesses cannot slip past the limit while the first ones are being checked.
A successful login clears its name's failures (not its address's: one good account must not
launder an address's guesses); failures are forgotten `backoff_max_s` after the last wait.

Memory is bounded: addresses and unknown names each sit in an LRU table of `max_keys`; the
names of real accounts have their own table (there are only as many as the config has), so
a flood of made-up names cannot evict a real account's count. Names are limited whether or
not they exist, so the answers do not tell which do.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from clipwatch.config import LoginLimits

log = logging.getLogger(__name__)
MAX_KEYS = 10_000


class TooManyAttempts(Exception):
    def __init__(self, retry_after: float, what: str) -> None:
        super().__init__(f"too many failed sign-ins {what}: try again in "
                         f"{retry_after_header(retry_after)} s")
        self.retry_after = retry_after


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def client_key(host: str | None) -> str:
    """An address as the limit counts it: IPv6 by its /64 (one host often holds all of it)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass
class _Count:
    failures: int = 0
    pending: int = 0  # attempts being checked now
    until: float = 0.0  # no attempt before this (monotonic)
    last: float = 0.0  # the last failure or the end of the last wait


class _Table:
    """Counts per key, least recently used dropped past `max_keys` (None: unbounded)."""

    def __init__(self, max_keys: int | None) -> None:
        self.max_keys = max_keys
        self.counts: OrderedDict[str, _Count] = OrderedDict()

    def get(self, key: str) -> _Count:
        count = self.counts.get(key)
        if count is None:
            count = self.counts[key] = _Count()
            if self.max_keys is not None and len(self.counts) > self.max_keys:
                self.counts.popitem(last=False)
        self.counts.move_to_end(key)
        return count

    def drop_if_clear(self, key: str) -> None:
        count = self.counts.get(key)
        if count is not None and count.failures == 0 and count.pending == 0:
            del self.counts[key]


class LoginLimiter:
    def __init__(self, limits: LoginLimits, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._accounts = _Table(None)  # real accounts only: bounded by the config
        self._names = _Table(max_keys)
        self._addresses = _Table(max_keys)
        self._lock = threading.Lock()

    def _keys(self, name: str, address: str, known: bool) -> list[tuple[_Table, str, int, str]]:
        names = self._accounts if known else self._names
        return [(names, name, self.limits.account_failures, f"for {name!r}"),
                (self._addresses, address, self.limits.address_failures, f"from {address}")]

    def begin(self, name: str, address: str, known: bool) -> None:
        """Count an attempt in, or raise TooManyAttempts (then nothing is counted)."""
        now = self.clock()
        with self._lock:
            entries = self._keys(name, address, known)
            refused: TooManyAttempts | None = None
            for table, key, free, what in entries:
                count = table.get(key)
                if count.pending == 0 and count.failures and \
                        now - max(count.last, count.until) > self.limits.backoff_max_s:
                    count.failures = 0  # quiet for long enough: forgotten
                if now < count.until:
                    refused = refused or TooManyAttempts(count.until - now, what)
                elif count.pending and count.failures + count.pending >= free:
                    # the last tries allowed are being checked: their verdict comes first
                    refused = refused or TooManyAttempts(1.0, what)
            for table, key, _, _ in entries:
                if refused is None:
                    table.get(key).pending += 1
                else:
                    table.drop_if_clear(key)
            if refused is not None:
                raise refused

    def end(self, name: str, address: str, known: bool, ok: bool | None) -> None:
        """The attempt's verdict: True (signed in), False (wrong), None (not checked)."""
        now = self.clock()
        with self._lock:
            for n, (table, key, free, what) in enumerate(self._keys(name, address, known)):
                count = table.get(key)
                count.pending = max(0, count.pending - 1)
                if ok is False:
                    count.failures += 1
                    count.last = now
                    if count.failures >= free:
                        wait = min(self.limits.backoff_max_s,
                                   self.limits.backoff_s * 2 ** (count.failures - free))
                        count.until = count.last = now + wait
                        log.warning("%d failed sign-ins %s: the next try must wait %.0f s",
                                    count.failures, what, wait)
                elif ok and n == 0:  # the name signed in: its count starts over
                    count.failures, count.until = 0, 0.0
                table.drop_if_clear(key)
