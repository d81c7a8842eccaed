"""The process-wide pool that delivers outbox rows by id, and its sweeper.

The pool never holds more than `in_flight_limit` ids: what does not fit waits
in the database, where the sweeper finds it once there is room. Memory stays
flat whatever the backlog.
"""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from models import Notification
from notifier import outbox
from notifier.backoff import retry_delay
from notifier.errors import PermanentError, TransientError

log = logging.getLogger("notifier.pool")
pressure_log = logging.getLogger("notifier.pool.pressure")
sweep_log = logging.getLogger("notifier.sweeper")

QUEUED, STARTED = "queued", "started"


def describe(row):
    """`notification 42 (whatsapp_admin, order A-1001)` for log lines."""
    reference = row.order.reference if row.order_id is not None else "-"
    return f"notification {row.id} ({row.kind}, order {reference})"


class Notifier:
    """Runs registered tasks for outbox rows in one ThreadPoolExecutor."""

    def __init__(self, settings, registry, context, clock=time.time):
        self.settings = settings
        self.registry = registry
        self.context = context
        self.clock = clock
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._executor = None
        self._sweeper = None
        self._lock = threading.Condition()
        self._in_flight = {}  # id -> QUEUED / STARTED
        self._claimed = set()  # ids claimed by the sweeper, not yet started
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stopping = False
        self._full = False
        self._backlog = False

    # -- life cycle -------------------------------------------------------

    def start(self):
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.threads, thread_name_prefix="notifier"
        )
        self._sweeper = threading.Thread(
            target=self._sweep_loop, name="notifier-sweeper", daemon=True
        )
        self._sweeper.start()
        log.info(
            "notifier %s started: %d threads, up to %d in flight",
            self.owner,
            self.settings.threads,
            self.settings.in_flight_limit,
        )

    @property
    def running(self):
        return (
            self._executor is not None
            and not self._stopping
            and self._sweeper is not None
            and self._sweeper.is_alive()
        )

    def in_flight(self):
        with self._lock:
            return len(self._in_flight)

    def shutdown(self, deadline=None):
        """Stop, wait for sends in flight up to `deadline` seconds, hand back
        the rest. Returns the ids left for the next start and whether some
        send was still running when the deadline passed."""
        if self._executor is None or self._stopping:
            return [], False
        deadline = self.settings.drain_seconds if deadline is None else deadline
        log.info("notifier %s stopping: draining up to %.1f s", self.owner, deadline)
        with self._lock:
            # From here on no queued id starts (see _run): note which they are.
            self._stopping = True
            queued = [n for n, state in self._in_flight.items() if state == QUEUED]
            unstarted = set(self._claimed)
        end = time.monotonic() + deadline
        self._stop.set()
        self._wake.set()
        self._sweeper.join(timeout=max(0.5, end - time.monotonic()))
        self._executor.shutdown(wait=False, cancel_futures=True)

        with self._lock:
            for nid in queued:
                self._in_flight.pop(nid, None)
            while self._in_flight and time.monotonic() < end:
                self._lock.wait(timeout=end - time.monotonic())
            stuck = sorted(self._in_flight)

        try:
            released = outbox.release(self.owner, unstarted=unstarted)
        except Exception:
            log.exception("notifier %s could not release its leases", self.owner)
            released = stuck
        left = sorted(set(released) | set(queued))
        if left:
            log.warning(
                "notifier %s stopped; %d notifications left for the next start: %s",
                self.owner,
                len(left),
                ", ".join(map(str, left[:50])),
            )
        else:
            log.info("notifier %s stopped; nothing left in flight", self.owner)
        if stuck:
            log.warning(
                "sends still running after %.1f s: %s",
                deadline,
                ", ".join(map(str, stuck)),
            )
        return left, bool(stuck)

    # -- handing ids to the pool -----------------------------------------

    def submit(self, ids, claimed=False):
        """Hand ids to the pool; those that do not fit stay for the sweeper.

        `claimed` ids were already claimed by this process. Returns the ids
        taken; an id already queued counts as taken (and, when `claimed`, is
        marked so its job does not claim it again).
        """
        taken = []
        for nid in ids:
            with self._lock:
                if self._stopping:
                    break
                state = self._in_flight.get(nid)
                if state is not None:
                    if claimed and state == QUEUED:
                        self._claimed.add(nid)
                        taken.append(nid)
                    continue
                if len(self._in_flight) >= self.settings.in_flight_limit:
                    self._set_full(True)
                    self._backlog = True  # wake the sweeper as room frees up
                    break
                self._in_flight[nid] = QUEUED
                if claimed:
                    self._claimed.add(nid)
            try:
                self._executor.submit(self._run, nid)
            except RuntimeError:  # the executor shut down meanwhile
                with self._lock:
                    self._in_flight.pop(nid, None)
                    self._claimed.discard(nid)
                break
            log.debug("notification %s scheduling", nid)
            taken.append(nid)
        return taken

    def fast_claim(self):
        """A Claim for rows about to be committed, if the pool has room."""
        with self._lock:
            room = len(self._in_flight) < self.settings.in_flight_limit
        if self._stopping or not room:
            return None
        return outbox.Claim(self.owner, self.settings.lease_seconds)

    def hand_over(self, ids, claimed):
        """Submit committed ids; give back the claims of those not taken."""
        taken = self.submit(ids, claimed=claimed)
        rest = sorted(set(ids) - set(taken))
        if claimed and rest:
            # Stopping, full, or a job of the fast path had already begun to
            # claim the row: release it so the next round takes it.
            outbox.release(self.owner, unstarted=rest, only=rest)
        return taken

    def _set_full(self, full):
        # Back-pressure is logged when it changes, not per job.
        if full != self._full:
            self._full = full
            if full:
                pressure_log.warning(
                    "pool full (%d in flight); new rows wait in the database",
                    len(self._in_flight),
                )
            else:
                pressure_log.info("pool has room again")

    def _finished(self, nid, lost_claim=False):
        with self._lock:
            self._in_flight.pop(nid, None)
            self._claimed.discard(nid)
            room = self.settings.in_flight_limit - len(self._in_flight)
            if self._full and room * 2 >= self.settings.in_flight_limit:
                self._set_full(False)
            # Refill early while a backlog waits, so threads never idle. A lost
            # claim may be this process's own sweeper, which hands the row
            # back: look again rather than leave it to the next interval.
            refill = self._backlog and room * 2 >= self.settings.in_flight_limit
            if refill or lost_claim:
                self._wake.set()
            self._lock.notify_all()

    # -- running one row ---------------------------------------------------

    def _run(self, nid):
        won = True
        try:
            with self._lock:
                if self._stopping:
                    return
                self._in_flight[nid] = STARTED
                claimed = nid in self._claimed
                self._claimed.discard(nid)
            won = self._deliver(nid, claimed)
        except Exception:
            # Most likely the database went away; the lease brings it back.
            log.critical("notification %s: worker error", nid, exc_info=True)
        finally:
            self._finished(nid, lost_claim=not won)

    def _deliver(self, nid, claimed):
        settings = self.settings
        if not claimed and not outbox.claim_one(
            nid, self.owner, settings.lease_seconds, now=self.clock()
        ):
            log.debug("notification %s taken elsewhere or not due", nid)
            return False

        row = Notification.get_by_id(nid)
        label = describe(row)
        log.info("%s executing, attempt %d", label, row.attempts)
        started = time.monotonic()
        try:
            task = self.registry.get(row.kind)
            provider_id = task(row, self.context)
        except TransientError as exc:
            self._failed(row, label, exc, transient=True)
        except PermanentError as exc:
            self._failed(row, label, exc, transient=False)
        except Exception as exc:
            log.error("%s raised an unexpected error", label, exc_info=True)
            self._failed(row, label, exc, transient=True)
        else:
            elapsed = time.monotonic() - started
            if outbox.mark_sent(nid, self.owner, provider_id, now=self.clock()):
                log.info("%s sent in %.2f s", label, elapsed)
            else:
                log.warning("%s sent, but its lease was taken meanwhile", label)
        return True

    def _failed(self, row, label, exc, transient):
        error = f"{type(exc).__name__}: {exc}"
        if transient and row.attempts < self.settings.max_attempts:
            delay = retry_delay(
                row.attempts,
                self.settings.backoff_base,
                self.settings.backoff_max,
                retry_after=getattr(exc, "retry_after", None),
            )
            at = self.clock() + delay
            if outbox.mark_retry(row.id, self.owner, error, at):
                log.warning("%s failed (%s); retry at +%.1f s", label, error, delay)
            return
        if outbox.mark_dead(row.id, self.owner, error):
            log.error("%s dead after %d attempts: %s", label, row.attempts, error)

    # -- the sweeper -------------------------------------------------------

    def sweep(self):
        """Claim what is due and fits; return how many ids were handed over."""
        limit = self.settings.in_flight_limit
        with self._lock:
            room = limit - len(self._in_flight)
            busy = list(self._in_flight)
        # Until this round knows better, a finishing job wakes the next one.
        self._backlog = True
        if room <= 0:
            return 0
        ids = outbox.claim_due(
            self.owner,
            self.settings.lease_seconds,
            room,
            exclude=busy,
            now=self.clock(),
        )
        self._backlog = len(ids) == room
        taken = self.hand_over(ids, claimed=True)
        if ids:
            sweep_log.debug("sweeper handed %d notifications to the pool", len(taken))
        return len(taken)

    def _sweep_loop(self):
        interval = self.settings.sweep_seconds
        while not self._stop.is_set():
            # Cleared before the round, so a wake during it is not lost.
            self._wake.clear()
            try:
                self.sweep()
            except Exception:
                sweep_log.error("sweep failed; trying again", exc_info=True)
            self._wake.wait(timeout=interval)
