"""The apply-time budget: charged per user, throttles, suspects."""

from __future__ import annotations

import pytest

from collab.rooms.budget import SLOW_APPLY_S, ApplyBudget, ApplyBudgetExceeded


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budget(clock: FakeClock, *, rate_s_per_s: float = 0.25) -> ApplyBudget:
    return ApplyBudget(rate_s_per_s=rate_s_per_s, burst_s=1.0, throttle_s=60.0, clock=clock)


def test_a_user_within_the_burst_is_not_stopped() -> None:
    """Apply time up to the burst is allowed at once."""
    clock = FakeClock()
    applies = budget(clock)
    for _ in range(100):
        assert applies.charge("u1", 0.009) is None


def test_a_user_over_the_burst_is_refused_and_throttled() -> None:
    """Past the burst, charge returns the error, and the user stays throttled for a while."""
    clock = FakeClock()
    applies = budget(clock)
    over = None
    for _ in range(200):
        over = applies.charge("u1", 0.009)
        if over is not None:
            break
    assert isinstance(over, ApplyBudgetExceeded)
    assert "COLLAB_APPLY_MS_PER_S" in str(over)
    assert over.retry_after_s == 60
    with pytest.raises(ApplyBudgetExceeded, match="throttled for 60 s more"):
        applies.check("u1")
    applies.check("u2")
    clock.now += 61
    applies.check("u1")


def test_the_budget_refills_at_its_rate() -> None:
    """A user spending less than the rate on average is never stopped."""
    clock = FakeClock()
    applies = budget(clock)
    for _ in range(1000):
        assert applies.charge("u1", 0.009) is None
        clock.now += 0.04  # 9 ms every 40 ms: 225 ms/s, under 250


def test_slow_applies_make_the_user_a_suspect_for_the_throttle_period() -> None:
    """Two applies over SLOW_APPLY_S (here or in the worker) within a throttle period route
    the user's next updates to the trial worker until the period ends; one is not enough."""
    clock = FakeClock()
    applies = budget(clock)
    applies.note_apply("u1", SLOW_APPLY_S / 2)
    applies.note_apply("u1", SLOW_APPLY_S * 2)
    assert not applies.is_suspect("u1")
    clock.now += 61
    applies.note_apply("u1", SLOW_APPLY_S * 2)
    assert not applies.is_suspect("u1")  # the first slow apply is forgotten by now
    clock.now += 30
    applies.note_apply("u1", SLOW_APPLY_S * 2)
    assert applies.is_suspect("u1")
    assert not applies.is_suspect("u2")
    assert not applies.is_suspect(None)
    clock.now += 61
    assert not applies.is_suspect("u1")


def test_a_rate_of_zero_disables_the_budget_but_not_suspects() -> None:
    """COLLAB_APPLY_MS_PER_S=0: nobody is stopped for apply time; slow applies still count."""
    clock = FakeClock()
    applies = budget(clock, rate_s_per_s=0)
    assert applies.charge("u1", 100.0) is None
    assert applies.charge("u1", 100.0) is None
    applies.check("u1")
    assert applies.is_suspect("u1")


def test_the_servers_own_edits_are_never_charged() -> None:
    """Edits without an actor (the server's) are not budgeted."""
    applies = budget(FakeClock())
    assert applies.charge(None, 100.0) is None
