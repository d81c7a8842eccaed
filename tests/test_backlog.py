"""The comparison's blow mid-backlog (bench/backlog.py) counts what it must.

Held against two peers whose answers are known in advance: the service loses
nothing to a SIGKILL; the bare thread pool loses its queue to a SIGTERM,
which ends a waitress process without running `atexit`.
"""

import signal

import pytest

from bench import backlog
from bench.compare import make_env
from bench.peers.procs import BY_NAME


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_service_loses_nothing_to_sigkill_mid_backlog():
    peer = BY_NAME["service"]
    outcome = backlog.run(
        peer, signal.SIGKILL, make_env(peer), orders=30, out=lambda _: None
    )
    assert outcome.paid == 30, outcome
    assert outcome.expected == 90, outcome
    assert outcome.missing == 0, outcome
    assert outcome.received_at_blow >= 30, outcome
    assert outcome.unanswered == 0, outcome
    # What the dead process held came back once its leases (15 s from each
    # claim) ran out, and only that can arrive twice: at most the pool's four
    # sends under way.
    assert 5 < outcome.last_seconds < 60, outcome
    assert outcome.duplicated <= 4, outcome


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bare_thread_pool_loses_its_queue_to_sigterm():
    peer = BY_NAME["thread_pool"]
    outcome = backlog.run(
        peer, signal.SIGTERM, make_env(peer), orders=30, quiet=3, out=lambda _: None
    )
    assert outcome.paid == 30, outcome
    # All queued in the process died with it: a SIGTERM runs no `atexit`.
    # At most the four sends under way (and a few arriving as the count was
    # read) got out.
    assert outcome.missing >= 90 - outcome.received_at_blow - 8, outcome
    assert outcome.duplicated == 0, outcome
    assert outcome.last_seconds is None, outcome
    assert outcome.stop_seconds < 5, outcome
