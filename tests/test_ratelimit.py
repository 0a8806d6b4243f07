from shared.features.ratelimit import SlidingWindow


def test_at_most_limit_in_any_window() -> None:
    window = SlidingWindow(3, 1000)
    assert [window.allow(t) for t in (0, 10, 20, 30, 999)] == [True, True, True, False, False]
    assert window.allow(1000)  # the first one left the window
    assert not window.allow(1001)
    assert window.allow(1010) and window.allow(1020)


def test_lowering_the_limit_applies_at_once() -> None:
    window = SlidingWindow(5, 1000)
    for t in range(5):
        assert window.allow(t)
    window.limit = 2
    assert not window.allow(10)
    assert window.allow(1004)


def test_idle_after_a_quiet_window() -> None:
    window = SlidingWindow(2, 1000)
    assert window.idle(0)
    window.allow(100)
    assert not window.idle(1099)
    assert window.idle(1100)


def test_memory_follows_the_rate_not_the_limit() -> None:
    """A raised limit (an account quota of 10**6/s) must not keep every timestamp up to it."""
    window = SlidingWindow(1_000_000, 1000)
    for t in range(0, 600_000, 2):  # 500 events/s for 10 minutes, all allowed
        assert window.allow(t)
    assert len(window) <= 500


def test_limit_zero_allows_nothing() -> None:
    window = SlidingWindow(0, 1000)
    assert not window.allow(0) and not window.allow(5000)
