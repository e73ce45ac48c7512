"""Claims on cluster IPs and node ports (api/reservations.py) against a real
SQLite store, with a fake clock for the grace period."""

from __future__ import annotations

import asyncio

import pytest

from corral.api.reservations import GRACE_SECONDS, Reservations
from corral.clock import FakeClock
from corral.store.sqlite import SqliteStore

PREFIX = "/registry/ranges/serviceips/"


async def test_of_many_concurrent_claims_exactly_one_wins(store: SqliteStore) -> None:
    claims = Reservations(PREFIX, FakeClock())
    results = await asyncio.gather(*(claims.claim(store, "127.43.0.2", f"ns/s{i}") for i in range(20)))
    assert results.count(True) == 1


async def test_the_same_owner_may_claim_again_and_release_only_its_own(store: SqliteStore) -> None:
    claims = Reservations(PREFIX, FakeClock())
    assert await claims.claim(store, "127.43.0.2", "ns/a")
    assert await claims.claim(store, "127.43.0.2", "ns/a")
    assert not await claims.claim(store, "127.43.0.2", "ns/b")
    await claims.release(store, "127.43.0.2", "ns/b")
    assert await store.get(PREFIX + "127.43.0.2") is not None
    await claims.release(store, "127.43.0.2", "ns/a")
    assert await claims.claim(store, "127.43.0.2", "ns/b")


async def test_claim_first_skips_what_others_hold(store: SqliteStore) -> None:
    claims = Reservations(PREFIX, FakeClock())
    assert await claims.claim(store, "a", "x/1")
    assert await claims.claim_first(store, iter(["a", "b", "c"]), "x/2") == "b"
    assert await claims.claim_first(store, iter(["a", "b"]), "x/3") is None


async def test_a_stale_claim_is_swept_and_an_in_use_or_fresh_one_is_kept(store: SqliteStore) -> None:
    clock = FakeClock()
    claims = Reservations(PREFIX, clock)
    for value in ("used", "leaked"):
        assert await claims.claim(store, value, f"ns/{value}")
    assert await claims.held(store, {"used"}) == {"used", "leaked"}  # within the grace period
    await clock.advance(GRACE_SECONDS + 1)
    assert await claims.claim(store, "fresh", "ns/fresh")
    await store.create(PREFIX + "garbage", b"not json")
    assert await claims.held(store, {"used"}) == {"used", "fresh"}
    assert await store.get(PREFIX + "leaked") is None
    assert await store.get(PREFIX + "garbage") is None


def test_a_prefix_must_be_a_directory() -> None:
    with pytest.raises(ValueError, match="prefix"):
        Reservations("/registry/ranges/serviceips", FakeClock())
