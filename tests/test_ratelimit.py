from shared.ratelimit import SlidingWindow


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
