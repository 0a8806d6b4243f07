"""Id12s are cut from a pool of random bytes: still uniform, never shared with a forked child."""

from __future__ import annotations

import collections
import multiprocessing
import os

from shared.protocol import ids


def test_every_character_is_about_equally_likely() -> None:
    counts = collections.Counter("".join(ids.new_id() for _ in range(20_000)))
    assert set(counts) == set(ids._ALPHABET)
    expected = 20_000 * 12 / 62
    # a bias such as "b % 62 over all 256 byte values" would make the first 8 characters ~25 % likelier
    assert max(counts.values()) < expected * 1.08 and min(counts.values()) > expected * 0.92


def test_ids_span_more_than_one_pool_refill() -> None:
    many = [ids.new_id() for _ in range(3 * ids.POOL_BYTES // 12)]
    assert len(set(many)) == len(many) and all(ids.ID12_RE.match(i) for i in many)


def _child_ids(out: multiprocessing.Queue) -> None:
    out.put([ids.new_id() for _ in range(50)])


def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    ids.new_id()  # the parent's pool is filled now
    assert ids._pool
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_child_ids, args=(out,))
    child.start()
    theirs = out.get(timeout=30)
    child.join()
    ours = [ids.new_id() for _ in range(50)]
    assert not set(theirs) & set(ours), f"pid {os.getpid()} and its child handed out the same ids"
