"""RetryPolicy.delay is a pure function of its inputs; Retrier.call applies it."""

from __future__ import annotations

import dataclasses
import random
from contextlib import nullcontext

import pytest

from connectors._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    RetriableSourceError,
)
from connectors._retry import NO_RETRY, Retrier, RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (8, 30.0), (50, 30.0)],
)
def test_delay_without_jitter_doubles_from_base_up_to_the_cap(attempt, expected):
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, jitter=False)
    assert policy.delay(attempt) == expected


def test_delay_for_attempt_zero_is_the_base_delay():
    assert RetryPolicy(base_delay=0.25, jitter=False).delay(0) == 0.25


def test_delay_with_zero_base_is_always_zero():
    policy = RetryPolicy(base_delay=0.0, jitter=True)
    assert [policy.delay(n, rng=random.Random(1)) for n in range(1, 6)] == [0.0] * 5


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 6, 7, 12])
def test_jittered_delay_stays_within_zero_and_the_capped_ceiling(attempt):
    policy = RetryPolicy(base_delay=0.5, max_delay=10.0)
    ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
    rng = random.Random(20240611)
    delays = [policy.delay(attempt, rng=rng) for _ in range(300)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole range, not a band near the ceiling or near zero.
    assert min(delays) < 0.1 * ceiling
    assert max(delays) > 0.9 * ceiling


def test_jittered_delay_is_reproducible_from_the_seeded_random_source():
    policy = RetryPolicy()
    first = [policy.delay(n, rng=random.Random(42)) for n in range(1, 8)]
    second = [policy.delay(n, rng=random.Random(42)) for n in range(1, 8)]
    other = [policy.delay(n, rng=random.Random(43)) for n in range(1, 8)]
    assert first == second
    assert first != other


def test_jittered_delay_draws_from_the_given_rng_not_the_global_one():
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0)
    expected = random.Random(5).uniform(0.0, 4.0)
    random.seed(999)  # must not matter
    assert policy.delay(3, rng=random.Random(5)) == expected


@pytest.mark.parametrize("jitter", [True, False])
@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(120, 120.0), (0.25, 0.25), (0, 0.0), (-3, 0.0), ("7", 7.0)],
)
def test_retry_after_from_the_server_wins_over_the_computed_delay(jitter, retry_after, expected):
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, jitter=jitter)
    assert policy.delay(4, retry_after=retry_after, rng=random.Random(0)) == expected


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, nullcontext()),
        ({"max_attempts": 1}, nullcontext()),
        ({"base_delay": 0, "max_delay": 0}, nullcontext()),
        ({"max_attempts": 0}, pytest.raises(ValueError, match="max_attempts")),
        ({"max_attempts": -2}, pytest.raises(ValueError, match="max_attempts")),
        ({"base_delay": -0.1}, pytest.raises(ValueError, match="negative")),
        ({"max_delay": -1}, pytest.raises(ValueError, match="negative")),
    ],
)
def test_policy_validates_its_values(kwargs, expectation):
    with expectation:
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(("attempt", "allowed"), [(1, True), (2, True), (3, False), (4, False)])
def test_should_retry_until_max_attempts_have_failed(attempt, allowed):
    assert RetryPolicy(max_attempts=3).should_retry(attempt) is allowed


def test_no_retry_allows_exactly_one_attempt():
    assert NO_RETRY.max_attempts == 1
    assert not NO_RETRY.should_retry(1)


def test_policy_is_an_immutable_value():
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 9
    assert policy == RetryPolicy()


def test_delay_far_past_the_cap_is_the_cap():
    policy = RetryPolicy(max_attempts=10_000, base_delay=0.5, max_delay=30.0, jitter=False)
    assert policy.delay(1100) == 30.0


class FlakySource:
    """Raises the queued errors one per call, then returns ``result``."""

    def __init__(self, errors, result="rows"):
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def make_retrier(policy, **kwargs):
    sleeps: list[float] = []
    return Retrier(policy=policy, sleep=sleeps.append, **kwargs), sleeps


def test_call_returns_the_first_success_without_sleeping():
    retrier, sleeps = make_retrier(RetryPolicy())
    source = FlakySource([])
    assert retrier.call(source, "read orders") == "rows"
    assert source.calls == 1
    assert sleeps == []


def test_call_retries_retriable_errors_sleeping_the_computed_delays():
    retrier, sleeps = make_retrier(RetryPolicy(max_attempts=5, base_delay=0.5, jitter=False))
    source = FlakySource([RetriableSourceError("reset")] * 3)
    assert retrier.call(source, "read orders") == "rows"
    assert source.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_call_sleeps_jittered_delays_drawn_from_the_injected_rng():
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=3.0)
    retrier, sleeps = make_retrier(policy, rng=random.Random(11))
    retrier.call(FlakySource([RetriableSourceError("reset")] * 3), "read orders")
    reference = random.Random(11)
    assert sleeps == [policy.delay(n, rng=reference) for n in (1, 2, 3)]
    assert all(0.0 <= s <= c for s, c in zip(sleeps, [1.0, 2.0, 3.0], strict=True))


def test_call_sleeps_what_the_source_asked_for():
    retrier, sleeps = make_retrier(RetryPolicy(base_delay=0.5, jitter=False))
    errors = [RetriableSourceError("429", retry_after=12.0), RetriableSourceError("reset")]
    retrier.call(FlakySource(errors), "read orders")
    assert sleeps == [12.0, 1.0]


def test_call_gives_up_after_max_attempts_and_says_how_many():
    retrier, sleeps = make_retrier(RetryPolicy(max_attempts=3, base_delay=0.5, jitter=False))
    last = RetriableSourceError("connection reset", retry_after=4.0)
    source = FlakySource([RetriableSourceError("timeout"), RetriableSourceError("timeout"), last])
    with pytest.raises(RetriableSourceError) as info:
        retrier.call(source, "read orders")
    assert source.calls == 3
    assert sleeps == [0.5, 1.0]
    assert info.value.message == "read orders failed after 3 attempt(s): connection reset"
    assert info.value.__cause__ is last
    assert info.value.retry_after == 4.0


def test_call_under_no_retry_makes_one_attempt():
    retrier, sleeps = make_retrier(NO_RETRY)
    source = FlakySource([RetriableSourceError("timeout")])
    with pytest.raises(RetriableSourceError, match=r"after 1 attempt\(s\)"):
        retrier.call(source, "probe")
    assert source.calls == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("bad password"),
        ConfigurationError("no such table"),
        DataContractError("bad value"),
        ValueError("a bug"),
        KeyboardInterrupt(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_non_retriable_errors_pass_through_on_the_first_attempt(error):
    retrier, sleeps = make_retrier(RetryPolicy(max_attempts=5))
    source = FlakySource([error])
    with pytest.raises(type(error)) as info:
        retrier.call(source, "read orders")
    assert info.value is error
    assert source.calls == 1
    assert sleeps == []


def test_on_retry_is_told_the_attempt_the_error_and_the_delay():
    seen = []
    retrier, sleeps = make_retrier(
        RetryPolicy(max_attempts=3, base_delay=2.0, jitter=False),
        on_retry=lambda attempt, exc, seconds: seen.append((attempt, exc, seconds)),
    )
    first, second = RetriableSourceError("one"), RetriableSourceError("two", retry_after=9)
    retrier.call(FlakySource([first, second]), "read orders")
    assert seen == [(1, first, 2.0), (2, second, 9.0)]
    assert sleeps == [2.0, 9.0]


def test_on_retry_is_not_called_for_the_final_failure():
    seen = []
    retrier, _ = make_retrier(
        RetryPolicy(max_attempts=2, jitter=False), on_retry=lambda *args: seen.append(args)
    )
    with pytest.raises(RetriableSourceError):
        retrier.call(FlakySource([RetriableSourceError("x")] * 2), "read orders")
    assert [attempt for attempt, _, _ in seen] == [1]
