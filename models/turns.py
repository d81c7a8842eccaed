"""Whose turn it is to write to SQLite, within one process.

SQLite has one writer at a time. Left to SQLite's busy handler, waiting
writers sleep up to 100 ms between tries and newcomers overtake them: that
sleep made the tail latency. Here they wait in line instead, and a
waiting callback goes before the notifier's bookkeeping, so a gateway's
answer seldom waits behind a row of `sent` marks. After URGENT_STREAK
callbacks in a row a waiting background writer goes next, so delivery keeps
moving (and its leases stay fresh) under any load of callbacks.
"""

import threading
from collections import deque
from contextlib import contextmanager

URGENT_STREAK = 4


class WriterTurns:
    """A lock handed over directly to the next writer in line: one wake-up
    per turn, instead of every waiter waking to compete for the GIL."""

    def __init__(self):
        self._lock = threading.Lock()
        self._holder = None
        self._depth = 0
        self._lines = {False: deque(), True: deque()}  # background? -> waiters
        self._streak = 0  # urgent turns since a background writer's

    @contextmanager
    def turn(self, background=False):
        self._acquire(background)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, background):
        me = threading.get_ident()
        with self._lock:
            if self._holder == me:  # a nested transaction of the holder
                self._depth += 1
                return
            if self._holder is None:
                self._take(me, background)
                return
            baton = threading.Lock()
            baton.acquire()
            self._lines[background].append((me, background, baton))
        baton.acquire()  # released by _release once this writer holds the turn

    def _release(self):
        with self._lock:
            self._depth -= 1
            if self._depth:
                return
            urgent, background = self._lines[False], self._lines[True]
            if background and (not urgent or self._streak >= URGENT_STREAK):
                waiter = background.popleft()
            elif urgent:
                waiter = urgent.popleft()
            else:
                self._holder = None
                return
            me, is_background, baton = waiter
            self._take(me, is_background)
            baton.release()

    def _take(self, me, background):
        self._holder, self._depth = me, 1
        self._streak = 0 if background else self._streak + 1
