"""Whose turn it is to write to SQLite, within one process.

SQLite has one writer at a time. Left to SQLite's busy handler, waiting
writers sleep up to 100 ms between tries and newcomers overtake them: that
sleep made the tail latency. Here they queue on a condition instead, and a
waiting callback goes before the notifier's bookkeeping, so a gateway's
answer seldom waits behind a row of `sent` marks. After URGENT_STREAK
callbacks in a row a waiting background writer goes next, so delivery keeps
moving (and its leases stay fresh) under any load of callbacks.
"""

import threading
from contextlib import contextmanager

URGENT_STREAK = 4


class WriterTurns:
    def __init__(self):
        self._cond = threading.Condition()
        self._holder = None
        self._depth = 0
        self._waiting = {False: 0, True: 0}  # background? -> writers waiting
        self._streak = 0  # urgent turns since a background writer's

    @contextmanager
    def turn(self, background=False):
        self._acquire(background)
        try:
            yield
        finally:
            self._release()

    def _may_go(self, background):
        if self._holder is not None:
            return False
        owed = self._waiting[True] and self._streak >= URGENT_STREAK
        if background:
            return owed or not self._waiting[False]
        return not owed

    def _acquire(self, background):
        me = threading.get_ident()
        with self._cond:
            if self._holder == me:  # a nested transaction of the holder
                self._depth += 1
                return
            self._waiting[background] += 1
            try:
                while not self._may_go(background):
                    self._cond.wait()
            finally:
                self._waiting[background] -= 1
            self._holder, self._depth = me, 1
            self._streak = 0 if background else self._streak + 1

    def _release(self):
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._holder = None
                self._cond.notify_all()
