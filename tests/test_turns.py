"""Writers taking turns: callbacks first, background writers never starved."""

import threading
import time

from models.turns import URGENT_STREAK, WriterTurns


def test_one_writer_at_a_time_and_nesting_is_allowed():
    turns = WriterTurns()
    inside, most = [0], [0]
    lock = threading.Lock()

    def write(background):
        with turns.turn(background):
            with turns.turn(background):  # nested: same holder
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.001)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=write, args=(i % 2 == 0,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most[0] == 1


def _queue_behind_holder(turns, kinds, order):
    """Start writers of `kinds` while a holder keeps the turn; return threads."""
    threads = []
    for i, background in enumerate(kinds):

        def write(i=i, background=background):
            with turns.turn(background):
                order.append((i, background))

        thread = threading.Thread(target=write)
        thread.start()
        threads.append(thread)
        time.sleep(0.02)  # let it start waiting
    return threads


def test_waiting_callback_goes_before_waiting_background_writer():
    turns = WriterTurns()
    order = []
    with turns.turn(background=True):
        threads = _queue_behind_holder(turns, [True, False], order)
    for thread in threads:
        thread.join(5)
    assert order == [(1, False), (0, True)]


def test_background_writer_goes_after_a_streak_of_callbacks():
    turns = WriterTurns()
    order = []
    kinds = [True] + [False] * (URGENT_STREAK + 3)
    gate = threading.Event()

    def hold():
        with turns.turn(background=False):
            gate.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.02)
    threads = _queue_behind_holder(turns, kinds, order)
    gate.set()
    for thread in [holder, *threads]:
        thread.join(5)
    position = [i for i, (_, background) in enumerate(order) if background]
    # The holder's turn counted as the first of the streak.
    assert position == [URGENT_STREAK - 1]
