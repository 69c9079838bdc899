"""Password hashes, and the one thread that checks them.

- New hashes are argon2id (argon2-cffi; OWASP's first choice), in the standard PHC string
  `$argon2id$v=19$m=...,t=...,p=...$salt$hash`, so a hash says its own parameters.
- Hashes of earlier versions, PBKDF2-SHA256 (`pbkdf2_sha256$iterations$salt$digest`), are
  still accepted; `needs_rehash` says so, and a successful login replaces them (auth.py).
- A hash is deliberately slow, so checking passwords is kept off the scorer's CPU: one
  worker thread at a lower scheduling priority, with a short queue; when the queue is full
  the caller is refused at once (`HasherBusy`) instead of waiting or adding threads. A login
  flood then costs the service at most one core's idle time, and scoring wins the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id with OWASP's second listed profile (19 MiB, 2 passes, 1 lane). One lane: a hash
# takes one core, never both of a small box's, and the pool below runs one at a time, so the
# memory in use is one hash's 19 MiB. A check takes about 22 ms of CPU here (2 cores).
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1
_ARGON2 = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                         parallelism=ARGON2_PARALLELISM)
_LEGACY = "pbkdf2_sha256$"
NICENESS = 10  # the worker's: the scorer's threads (nice 0) get ~10x its share when both run


def hash_password(password: str) -> str:
    return _ARGON2.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (argon2, or a legacy PBKDF2 hash)."""
    if stored.startswith(_LEGACY):
        return _verify_pbkdf2(password, stored)
    try:
        return _ARGON2.verify(stored, password)
    except (VerificationError, InvalidHashError):  # a mismatch, or not a hash we know
        return False


def needs_rehash(stored: str) -> bool:
    """True for a legacy hash, or an argon2 one with other parameters than today's."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _ARGON2.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_pbkdf2(password: str, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
        ours = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                   int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(ours.hex(), digest)


@cache
def dummy_hash() -> str:
    """What an unknown name's password is checked against, so the answer takes as long."""
    return hash_password(os.urandom(16).hex())


class Checked(NamedTuple):
    ok: bool
    rehashed: str | None  # a new hash of the (right) password when the stored one is outdated


def check(password: str, stored: str | None) -> Checked:
    """`password` against `stored` (None: an unknown name, against a dummy hash)."""
    ok = verify_password(password, stored or dummy_hash()) and stored is not None
    return Checked(ok, hash_password(password) if ok and needs_rehash(stored) else None)


class HasherBusy(Exception):
    """Every place in the password checker's queue is taken: try again shortly."""

    retry_after = 1.0


class PasswordChecker:
    """One worker thread, niced, and at most `queue` checks waiting for it."""

    def __init__(self, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(queue + 1)  # + the one running
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:  # started on first use: an app without logins has no thread
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="password-check",
                                                    initializer=_lower_priority)
            return self._executor

    def submit(self, password: str, stored: str | None) -> Future[Checked]:
        if not self._slots.acquire(blocking=False):
            raise HasherBusy("too many sign-ins at once: try again shortly")
        try:
            future = self._pool().submit(check, password, stored)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    async def check(self, password: str, stored: str | None) -> Checked:
        return await asyncio.wrap_future(self.submit(password, stored))

    def close(self) -> None:
        """Stop the worker thread (the service is stopping); checks in progress finish."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _lower_priority() -> None:
    """Lower this thread's priority. On Linux `setpriority` on a thread id is per thread;
    elsewhere an id may name another process, so it is left alone there."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):  # not allowed here: the queue bound still holds
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
