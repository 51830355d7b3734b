"""Tests of minivae.utils.parallel: an ordered map with bounded look-ahead, serial without workers."""
import sys
import threading
import time

from minivae.utils.parallel import map_ahead, thread_pool


def test_results_come_back_in_the_order_of_the_items_whatever_finishes_first():
    def slow_for_small(n):
        time.sleep(0.002 * (5 - n))
        return n * n
    with thread_pool(3) as pool:
        assert pool is not None
        assert list(map_ahead(pool, slow_for_small, range(5), ahead=3)) == [0, 1, 4, 9, 16]


def test_at_most_ahead_items_are_drawn_before_their_results_are_taken():
    drawn = []

    def items():
        for i in range(10):
            drawn.append(i)
            yield i
    with thread_pool(2) as pool:
        results = map_ahead(pool, lambda i: i, items(), ahead=3)
        assert next(results) == 0 and len(drawn) == 3      # items 0, 1, 2 submitted, 0 taken
        assert list(results) == list(range(1, 10))


def test_one_worker_or_a_tracing_debugger_means_no_thread():
    with thread_pool(1) as pool:
        assert pool is None
        assert set(map_ahead(pool, lambda i: threading.get_ident(), range(3), ahead=2)) == {
            threading.get_ident()}
    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: None)
    try:
        with thread_pool(4) as pool:
            assert pool is None
    finally:
        sys.settrace(previous)
