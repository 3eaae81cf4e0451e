"""The throttle under concurrency: parallel guesses at one login queue on its row, so no more
than the free allowance (plus the one that starts the delay) get through at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models_web import LoginThrottle
from mailbot.web import throttle
from tests.conftest import FakeClock


def _claim(rt: Runtime) -> int:
    with transaction(rt.engine) as session:
        return throttle.claim(session, throttle.login_keys("7707083893", "10.0.0.9"), rt.clock())


def test_parallel_guesses_are_counted_one_by_one(rt: Runtime) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(pool.map(lambda _: _claim(rt), range(24)))
    passed = [w for w in waits if w == 0]
    assert len(passed) == throttle.LOGIN.free + 1
    with transaction(rt.engine) as session:
        row = session.get(LoginThrottle, "login:7707083893")
    assert row is not None and row.failures == throttle.LOGIN.free + 1


def test_a_refused_attempt_does_not_lengthen_the_wait(rt: Runtime, clock: FakeClock) -> None:
    for _ in range(throttle.LOGIN.free + 3):
        _claim(rt)
    first = _claim(rt)
    assert first > 0
    assert _claim(rt) == first
    clock.advance(seconds=first)
    assert _claim(rt) == 0


def test_a_quiet_day_forgets_the_failures(rt: Runtime, clock: FakeClock) -> None:
    for _ in range(throttle.LOGIN.free + 4):
        clock.advance(seconds=throttle.LOGIN.cap_seconds)
        _claim(rt)
    clock.advance(hours=25)
    assert _claim(rt) == 0
    with transaction(rt.engine) as session:
        row = session.get(LoginThrottle, "login:7707083893")
    assert row is not None and row.failures == 1


def test_the_wait_never_exceeds_the_cap(rt: Runtime, clock: FakeClock) -> None:
    longest, key = 0, throttle.login_keys("7707083893", "10.0.0.9")[:1]
    for _ in range(60):
        with transaction(rt.engine) as session:
            wait = throttle.claim(session, key, clock())
        longest = max(longest, wait)
        clock.advance(seconds=wait)  # a refused try costs nothing; the next one goes through
    assert longest == throttle.LOGIN.cap_seconds
    assert timedelta(seconds=longest) <= timedelta(minutes=5)
