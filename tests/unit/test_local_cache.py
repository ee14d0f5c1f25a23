"""The in-process copy of cached values (mesh.cache.LocalEntries): what invalidations
and slow readers can and cannot do to it."""
from __future__ import annotations

from mesh.cache import LocalEntries


def test_a_fill_is_served_until_its_key_is_invalidated():
    local = LocalEntries()
    local.fill("k", 1, b"one", local.mark(), ttl=60)
    assert local.get("k") == (1, b"one")
    local.invalidate(["k"])
    assert local.get("k") is None


def test_a_fill_that_began_before_an_invalidation_of_its_key_is_refused():
    local = LocalEntries()
    seen = local.mark()  # a reader asks Redis ...
    local.invalidate(["k"])  # ... a writer changes k meanwhile ...
    local.fill("k", 1, b"old", seen, ttl=60)  # ... the reader's answer may be the old value
    assert local.get("k") is None
    local.fill("k", 2, b"new", local.mark(), ttl=60)  # a read that began after it is kept
    assert local.get("k") == (2, b"new")


def test_an_invalidation_of_another_key_does_not_refuse_a_fill():
    local = LocalEntries()
    seen = local.mark()
    local.invalidate(["other"])
    local.fill("k", 1, b"one", seen, ttl=60)
    assert local.get("k") == (1, b"one")


def test_invalidate_all_drops_everything_and_refuses_fills_begun_before_it():
    local = LocalEntries()
    local.fill("a", 1, b"a", local.mark(), ttl=60)
    seen = local.mark()
    local.invalidate_all()
    local.fill("b", 1, b"b", seen, ttl=60)
    assert local.get("a") is None and local.get("b") is None


def test_an_older_version_never_replaces_a_newer_kept_one():
    local = LocalEntries()
    local.fill("k", 3, b"three", local.mark(), ttl=60)
    local.fill("k", 2, b"two", local.mark(), ttl=60)
    assert local.get("k") == (3, b"three")


def test_expired_and_zero_ttl_fills_are_not_served():
    local = LocalEntries()
    local.fill("k", 1, b"one", local.mark(), ttl=0)
    assert local.get("k") is None
    local.fill("k", 1, b"one", local.mark(), ttl=-1)
    assert local.get("k") is None


def test_many_invalidated_keys_stay_bounded_and_still_refuse_older_fills():
    local = LocalEntries(max_entries=4)
    seen = local.mark()
    for i in range(10):
        local.invalidate([f"k{i}"])
    assert len(local._dropped_at) <= 4
    local.fill("k0", 1, b"old", seen, ttl=60)  # its mark was forgotten, the floor still refuses it
    assert local.get("k0") is None
