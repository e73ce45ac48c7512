"""The informer cache's indexes, against a naive recomputation from the items."""

import random

import pytest

from corral.client.cache import Cache, object_key


def pod(name: str, node: str = "", ns: str = "ns1", *owners: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns,
                         "ownerReferences": [{"uid": u} for u in owners]},
            "spec": {"nodeName": node}}


def by_node(obj: dict) -> list[str]:
    node = obj["spec"]["nodeName"]
    return [node] if node else []


def by_owner(obj: dict) -> list[str]:
    return [r["uid"] for r in obj["metadata"]["ownerReferences"]]


def naive(cache: Cache, func, value: str) -> list[str]:
    return sorted(k for k in cache.keys() if value in func(cache.get(k)))


def test_index_follows_puts_and_removes_and_stays_sorted():
    cache = Cache()
    cache.add_index("node", by_node)
    cache.put(pod("c", "n1"))
    cache.put(pod("a", "n1"))
    cache.put(pod("b", "n2"))
    assert cache.index_keys("node", "n1") == ["ns1/a", "ns1/c"]
    cache.put(pod("a", "n2"))  # moved
    assert cache.index_keys("node", "n1") == ["ns1/c"]
    assert [object_key(o) for o in cache.by_index("node", "n2")] == ["ns1/a", "ns1/b"]
    assert cache.remove("ns1/b") is not None
    assert cache.index_keys("node", "n2") == ["ns1/a"]
    cache.put(pod("a", ""))  # indexed under nothing now
    assert cache.index_keys("node", "n2") == []
    assert cache.remove("ns1/a")["spec"]["nodeName"] == ""
    assert cache.remove("ns1/a") is None
    with pytest.raises(KeyError):
        cache.index_keys("zone", "z1")
    with pytest.raises(KeyError):
        cache.by_index("zone", "z1")


def test_returned_keys_are_the_callers_to_change():
    cache = Cache()
    cache.add_index("node", by_node)
    for name in "abc":
        cache.put(pod(name, "n1"))
    keys = cache.index_keys("node", "n1")
    keys.append("junk")
    assert cache.index_keys("node", "n1") == ["ns1/a", "ns1/b", "ns1/c"]


def test_index_added_late_covers_cached_objects_and_bad_index_functions_skip_objects():
    cache = Cache()
    cache.put(pod("a", "n1", "ns1", "u1", "u1"))
    cache.add_index("owner", by_owner)
    cache.add_index("broken", lambda o: o["no such field"])
    assert cache.index_keys("owner", "u1") == ["ns1/a"]
    assert cache.index_keys("broken", "x") == []
    cache.put(pod("a", "n1", "ns1", "u2"))
    assert cache.index_keys("owner", "u1") == []
    assert cache.index_keys("owner", "u2") == ["ns1/a"]


def test_random_churn_matches_a_naive_index():
    rng = random.Random(7)
    cache = Cache()
    cache.add_index("node", by_node)
    cache.add_index("owner", by_owner)
    names, nodes, uids = [f"p{i}" for i in range(30)], ["", "n1", "n2", "n3"], ["u1", "u2", "u3"]
    for _ in range(2000):
        name = rng.choice(names)
        if rng.random() < 0.2:
            cache.remove(f"ns1/{name}")
        else:
            owners = rng.sample(uids, rng.randint(0, 2))
            cache.put(pod(name, rng.choice(nodes), "ns1", *owners))
        value = rng.choice(nodes[1:])
        assert cache.index_keys("node", value) == naive(cache, by_node, value)
        uid = rng.choice(uids)
        assert cache.index_keys("owner", uid) == naive(cache, by_owner, uid)
        assert [object_key(o) for o in cache.by_index("owner", uid)] == naive(cache, by_owner, uid)
