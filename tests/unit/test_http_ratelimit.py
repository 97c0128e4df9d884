"""wait_needed is a pure sliding-window rule; RateLimit applies it through clock seams."""

from __future__ import annotations

import threading
from collections import deque

import pytest

from connectors.http import RateLimit, wait_needed


@pytest.mark.parametrize(
    ("recent", "now", "requests", "per_seconds", "expected"),
    [
        pytest.param([], 5.0, 3, 1.0, 0.0, id="empty-history"),
        pytest.param([4.5], 5.0, 3, 1.0, 0.0, id="one-under-the-limit"),
        pytest.param([4.25, 4.5], 5.0, 3, 1.0, 0.0, id="two-under-the-limit"),
        pytest.param([4.25, 4.5, 4.75], 5.0, 3, 1.0, 0.25, id="at-the-limit-oldest-leaves"),
        pytest.param([4.5], 5.0, 1, 1.0, 0.5, id="limit-of-one"),
        pytest.param([4.5, 4.5, 4.5], 4.5, 3, 1.0, 1.0, id="burst-at-now-waits-a-full-window"),
        pytest.param([1.0, 2.0, 4.5, 4.75], 5.0, 3, 1.0, 0.0, id="old-requests-ignored"),
        pytest.param([1.0, 2.0, 3.0], 5.0, 3, 1.0, 0.0, id="all-outside-the-window"),
        pytest.param([4.0, 4.5, 4.75], 5.0, 3, 1.0, 0.0, id="exactly-one-window-ago-is-out"),
        pytest.param([4.25, 4.5, 4.75], 5.0, 2, 1.0, 0.5, id="more-inside-than-the-limit"),
        pytest.param([1.0, 6.0, 8.0], 10.0, 2, 5.0, 1.0, id="longer-window"),
        pytest.param([1.0, 1.125], 1.25, 2, 0.5, 0.25, id="shorter-window"),
    ],
)
def test_wait_needed(recent, now, requests, per_seconds, expected):
    assert wait_needed(recent, now, requests, per_seconds) == expected


def test_wait_needed_is_never_negative_once_the_oldest_has_left():
    # Waiting exactly the answer makes the next call say go.
    recent = [4.25, 4.5, 4.75]
    delay = wait_needed(recent, 5.0, 3, 1.0)
    assert wait_needed(recent, 5.0 + delay, 3, 1.0) == 0.0


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_acquisitions_under_the_limit_do_not_wait():
    fake = FakeTime()
    limit = RateLimit(3, 1.0, clock=fake.clock, sleep=fake.sleep)
    assert [limit.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert fake.sleeps == []
    assert fake.now == 0.0


def test_ten_acquisitions_at_three_per_second_take_three_seconds():
    fake = FakeTime()
    limit = RateLimit(3, 1.0, clock=fake.clock, sleep=fake.sleep)
    starts, waits = [], []
    for _ in range(10):
        waits.append(limit.acquire())
        starts.append(fake.now)
    assert starts == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0]
    assert waits == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert fake.now == 3.0
    assert sum(fake.sleeps) == 3.0
    # No 1 s window [t, t + 1) holds more than 3 starts.
    for t in starts:
        assert sum(1 for s in starts if t <= s < t + 1.0) <= 3


def test_acquire_spreads_starts_when_time_passes_between_calls():
    fake = FakeTime()
    limit = RateLimit(2, 1.0, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for gap in [0.0, 0.25, 0.25, 0.25, 0.0]:
        fake.now += gap
        limit.acquire()
        starts.append(fake.now)
    # 0, 0.25 go at once; the third waits for 0 to leave (1.0); the fourth starts at
    # 1.25 (0.25 left the window exactly then); the fifth waits for 1.0 to leave (2.0).
    assert starts == [0.0, 0.25, 1.0, 1.25, 2.0]
    for t in starts:
        assert sum(1 for s in starts if t <= s < t + 1.0) <= 2


def test_acquire_returns_the_seconds_it_waited():
    fake = FakeTime(start=100.0)
    limit = RateLimit(1, 2.0, clock=fake.clock, sleep=fake.sleep)
    assert limit.acquire() == 0.0
    fake.now += 0.5
    assert limit.acquire() == 1.5
    assert fake.now == 102.0


def test_acquire_from_many_threads_all_return_and_are_all_counted():
    limit = RateLimit(1000, 1.0)  # real clock and sleep, far from the limit
    waits: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker():
        try:
            for _ in range(5):
                waited = limit.acquire()
                with lock:
                    waits.append(waited)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert waits == [0.0] * 40
    assert len(limit._recent) == 40


class RecordingDeque(deque):
    """The limiter's history, keeping every start time it is told (under its lock)."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self.starts: list[float] = []

    def append(self, value: float) -> None:
        self.starts.append(value)
        super().append(value)


def test_threads_sharing_a_tight_limit_never_exceed_it():
    # A fake clock that only the limiter (under its lock) reads and advances.
    fake = FakeTime()
    limit = RateLimit(2, 1.0, clock=fake.clock, sleep=fake.sleep)
    limit._recent = RecordingDeque(maxlen=2)

    def worker():
        for _ in range(3):
            limit.acquire()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    assert not any(thread.is_alive() for thread in threads)
    starts = limit._recent.starts
    assert starts == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0]
    assert fake.now == 5.0


@pytest.mark.parametrize(
    ("requests", "per_seconds"),
    [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -0.5), (0, 0)],
)
def test_invalid_limits_are_refused(requests, per_seconds):
    with pytest.raises(ValueError, match="requests >= 1 and per_seconds > 0"):
        RateLimit(requests, per_seconds)


def test_repr_names_the_limit():
    assert repr(RateLimit(5, 2.0)) == "RateLimit(5 per 2 s)"
