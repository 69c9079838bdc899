"""Giving a removed camera's memory back to the system.

A camera pipeline and its grabber refer to each other (status callbacks), so dropping one
frees nothing until the cyclic garbage collector's rare full pass; and glibc keeps freed heap
memory in its per-thread arenas (every reader thread gets one) instead of returning it. Both
are measured: 100 cameras added and removed through the API left the service at 2.5 GB where
it had started at 250 MB. So after a removal, once the camera's reader thread has ended, one
full collection runs and glibc is asked to hand free pages back (`malloc_trim`), on a thread
of its own, several removals at once sharing one pass.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SETTLE_S = 0.5  # removals this close together share one pass
AGAIN_S = 5.0  # and a second pass this much later: a scoring pass may hold frames that long


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None elsewhere (musl, macOS: nothing to call)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def release_memory() -> None:
    """Free unreachable cycles now, then return free heap pages to the system."""
    gc.collect()
    trim = _TRIM
    if trim is not None:
        trim()


_TRIM = _malloc_trim()


class MemoryReleaser:
    """Runs `release_memory` after things that held memory have ended, off the caller's
    thread (a removal answers at once; an abandoned reader may end much later)."""

    def __init__(self) -> None:
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def release_after(self, ended: Callable[[float | None], bool]) -> None:
        """Release memory once `ended(timeout)` (a thread's join) says it has ended."""
        def wait_then_release() -> None:
            ended(None)
            self.request()
        if ended(0):
            self.request()
        else:
            threading.Thread(target=wait_then_release, name="memory-wait", daemon=True).start()

    def request(self) -> None:
        with self._lock:
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="memory-release",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(SETTLE_S)  # let a burst of removals finish first
            with self._lock:
                if not self._wanted.is_set():
                    self._thread = None  # the next request starts a new thread
                    return
                self._wanted.clear()
            self._release()
            if not self._wanted.wait(AGAIN_S):
                self._release()  # what a scoring pass in flight held is free by now

    @staticmethod
    def _release() -> None:
        try:
            release_memory()
        except Exception as exc:  # never fatal: memory is merely kept longer
            log.warning("releasing memory failed: %s", exc)
