"""The shortcuts of a status write give exactly what the general paths give:
managedFields with undecoded entries against decoding and re-encoding every
entry, a status-only patch against patching the whole object, the one-pass FieldsV1 trie against building and pruning it, null
dropping that skips null-free subtrees against a full walk, and field
validation of only what changed against validating the whole object."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.api.objects import drop_nulls
from corral.api.patch import MERGE_PATCH as MERGE
from corral.api.patch import STRATEGIC_MERGE_PATCH as STRATEGIC
from corral.api.patch import apply_patch, apply_status_patch, update_managed_fields
from corral.api.patch.fieldpath import Path, field_values, to_fields_v1
from corral.api.patch.managed_fields import (
    MAX_UPDATE_MANAGERS,
    Manager,
    _find_or_add,
    _fold_old_updates,
    compare,
    decode,
)
from corral.resources.schema_check import check_changed_fields, check_fields
from corral.resources.schemas import kind_schema

POD = kind_schema("", "v1", "Pod")
T0, T1, T2 = "2026-11-26T00:00:00Z", "2026-11-26T00:00:01Z", "2026-11-26T00:00:02Z"


# -- the general path, as it was before the shortcuts --------------------------


def slow_trie(paths: Any) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
        node["."] = {}

    def prune(node: dict[str, Any]) -> dict[str, Any]:
        if list(node) == ["."]:
            return {}
        return {k: (v if k == "." else prune(v)) for k, v in node.items()}

    return prune(root)


def slow_encode(managers: list[Manager]) -> list[dict[str, Any]]:
    kept = sorted((m for m in managers if m.fields),
                  key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource))
    out = []
    for m in kept:
        entry: dict[str, Any] = {"manager": m.manager, "operation": m.operation, "apiVersion": m.api_version}
        if m.time:
            entry["time"] = m.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = slow_trie(m.fields)
        if m.subresource:
            entry["subresource"] = m.subresource
        out.append(entry)
    return out


def slow_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str,
                subresource: str = "") -> list[dict[str, Any]]:
    """Every entry decoded, both whole objects (or statuses) walked, every
    entry encoded again."""
    old = old or {}
    old_entries = (old.get("metadata") or {}).get("managedFields")
    new_entries = (new.get("metadata") or {}).get("managedFields", old_entries)
    managers = decode(new_entries if new_entries != old_entries else old_entries)
    if subresource == "status":
        before = {"status": old["status"]} if "status" in old else {}
        after = {"status": new["status"]} if "status" in new else {}
    else:
        before, after = old, new
    added, modified, removed = compare(field_values(before, POD), field_values(after, POD))
    taken = added | modified
    if taken or removed:
        for other in managers:
            other.fields -= taken | removed
        mine = _find_or_add(managers, manager, "Update", "v1", subresource)
        mine.fields = (mine.fields | taken) - removed
        mine.time = now
    return slow_encode(_fold_old_updates(managers))


def fast_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str,
                subresource: str = "") -> list[dict[str, Any]]:
    done = update_managed_fields(old, new, manager, "Update", "v1", now, POD, subresource=subresource)
    return done["metadata"].get("managedFields", [])


def same_bytes(a: Any, b: Any) -> bool:
    """Equal including the order of keys: what a client sees byte for byte."""
    return orjson.dumps(a) == orjson.dumps(b)


# -- cases ------------------------------------------------------------------------


def pod() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "i:1",
                                                        "resources": {"requests": {"cpu": "100m"}}}]},
            "status": {"phase": "Pending", "qosClass": "Burstable"}}


def running(ready: str = "True", at: str = T1) -> dict[str, Any]:
    conds = [{"type": t, "status": ready if t in ("Ready", "ContainersReady") else "True",
              "lastProbeTime": None, "lastTransitionTime": at}
             for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    return {"phase": "Running", "qosClass": "Burstable", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
            "conditions": conds,
            "containerStatuses": [{"name": "app", "ready": ready == "True", "restartCount": 0,
                                   "state": {"running": {"startedAt": at}}}]}


def created() -> dict[str, Any]:
    """As the server stores a created pod: the status it defaults is nobody's."""
    obj = pod()
    status = obj.pop("status")
    obj["metadata"]["managedFields"] = fast_update(None, obj, "kube-controller-manager", T0)
    obj["status"] = status
    return obj


def with_status(obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["status"] = status
    return new


def written(old: dict[str, Any], new: dict[str, Any], manager: str, now: str, sub: str = "status") -> dict[str, Any]:
    out = copy.deepcopy(new)
    out["metadata"]["managedFields"] = fast_update(old, new, manager, now, sub)
    return out


def test_first_status_write_gets_its_own_status_entry() -> None:
    live = created()
    entries = fast_update(live, with_status(live, running()), "corral-hollow-node", T1, "status")
    assert same_bytes(entries, slow_update(live, with_status(live, running()), "corral-hollow-node", T1, "status"))
    assert [(e["manager"], e.get("subresource", "")) for e in entries] == [  # by time
        ("kube-controller-manager", ""), ("corral-hollow-node", "status")]
    status_fields = entries[1]["fieldsV1"]["f:status"]
    assert status_fields["f:phase"] == {} and 'k:{"type":"Ready"}' in status_fields["f:conditions"]
    assert entries[0] == live["metadata"]["managedFields"][0]  # the creator's entry as it was


def test_status_write_that_changes_conditions_takes_them_from_their_owner() -> None:
    live = written(created(), with_status(created(), running("False", T1)), "corral-agent", T1)
    new = with_status(live, running("True", T2))
    entries = fast_update(live, new, "node-problem-detector", T2, "status")
    assert same_bytes(entries, slow_update(live, new, "node-problem-detector", T2, "status"))
    agent = next(e for e in entries if e["manager"] == "corral-agent")
    mine = next(e for e in entries if e["manager"] == "node-problem-detector")
    assert "f:status" in agent["fieldsV1"]  # still owns the conditions that did not change
    ready = mine["fieldsV1"]["f:status"]["f:conditions"]['k:{"type":"Ready"}']
    assert set(ready) == {"f:status", "f:lastTransitionTime"}


def test_status_write_by_the_same_manager_updates_its_entry_and_time() -> None:
    live = written(created(), with_status(created(), running("False", T1)), "corral-agent", T1)
    new = with_status(live, running("True", T2))
    entries = fast_update(live, new, "corral-agent", T2, "status")
    assert same_bytes(entries, slow_update(live, new, "corral-agent", T2, "status"))
    assert [e["time"] for e in entries if e["manager"] == "corral-agent"] == [T2]


def test_status_write_that_changes_nothing_leaves_every_entry_alone() -> None:
    live = written(created(), with_status(created(), running()), "corral-agent", T1)
    entries = fast_update(live, copy.deepcopy(live), "someone-else", T2, "status")
    assert same_bytes(entries, live["metadata"]["managedFields"])
    assert same_bytes(entries, slow_update(live, copy.deepcopy(live), "someone-else", T2, "status"))


def test_status_write_ignores_what_it_cannot_store() -> None:
    """A status PATCH that also changes a label changes only status."""
    live = created()
    new = with_status(live, running())
    new["metadata"]["labels"]["app"] = "other"
    entries = fast_update(live, new, "corral-hollow-node", T1, "status")
    assert same_bytes(entries, slow_update(live, new, "corral-hollow-node", T1, "status"))
    mine = next(e for e in entries if e["manager"] == "corral-hollow-node")
    assert list(mine["fieldsV1"]) == ["f:status"]
    assert entries[0] == live["metadata"]["managedFields"][0]  # the label stays the creator's


def test_same_manager_main_resource_and_status_entries_are_distinct() -> None:
    live = written(created(), with_status(created(), running()), "kube-controller-manager", T1)
    relabel = copy.deepcopy(live)
    relabel["metadata"]["labels"]["tier"] = "x"
    entries = fast_update(live, relabel, "kube-controller-manager", T2, "")
    assert same_bytes(entries, slow_update(live, relabel, "kube-controller-manager", T2, ""))
    assert sorted(e.get("subresource", "") for e in entries if e["manager"] == "kube-controller-manager") == [
        "", "status"]


def test_client_sent_entries_take_the_general_path() -> None:
    live = written(created(), with_status(created(), running()), "corral-agent", T1)
    new = with_status(live, running("False", T2))
    new["metadata"]["managedFields"] = []
    entries = fast_update(live, new, "corral-agent", T2, "status")
    assert same_bytes(entries, slow_update(live, new, "corral-agent", T2, "status"))


def test_many_managers_fold_into_ancient_changes_as_before() -> None:
    live = created()
    for i in range(MAX_UPDATE_MANAGERS + 2):
        new = copy.deepcopy(live)
        new["metadata"]["labels"][f"l{i}"] = "v"
        live = written(live, new, f"m{i}", f"2026-11-26T00:01:{i:02d}Z", "")
    new = with_status(live, running())
    entries = fast_update(live, new, "corral-agent", T2, "status")
    assert same_bytes(entries, slow_update(live, new, "corral-agent", T2, "status"))
    assert any(e["manager"] == "ancient-changes" for e in entries)


# -- properties ---------------------------------------------------------------------

names = st.sampled_from(["a", "b", "web"])
conds = st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["Ready", "Initialized", "PodScheduled"])},
    optional={"status": st.sampled_from(["True", "False"]), "lastProbeTime": st.none(),
              "reason": st.sampled_from(["x", "y"])}), max_size=3, unique_by=lambda c: c["type"])
statuses = st.fixed_dictionaries({}, optional={
    "phase": st.sampled_from(["Pending", "Running"]), "podIP": st.sampled_from(["10.0.0.1", "10.0.0.2"]),
    "conditions": conds, "qosClass": st.just("Burstable"),
    "containerStatuses": st.lists(st.fixed_dictionaries({"name": names}, optional={
        "ready": st.booleans(), "restartCount": st.integers(0, 2)}), max_size=2, unique_by=lambda c: c["name"]),
})
labels = st.dictionaries(names, st.sampled_from(["1", "2"]), max_size=2)
managers = st.sampled_from(["kubectl", "corral-agent", "corral-hollow-node", "kube-scheduler"])
writes = st.lists(st.tuples(managers, st.sampled_from(["status", ""]), labels, statuses), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(writes)
def test_any_sequence_of_writes_records_what_the_general_path_records(steps: list[Any]) -> None:
    live = created()
    for i, (manager, sub, new_labels, status) in enumerate(steps):
        new = copy.deepcopy(live)
        new["status"] = status
        if sub == "":
            new["metadata"]["labels"] = new_labels
        now = f"2026-11-26T00:02:{i:02d}Z"
        fast = fast_update(live, new, manager, now, sub)
        assert same_bytes(fast, slow_update(live, new, manager, now, sub))
        live = new
        live["metadata"]["managedFields"] = fast


elements = st.sampled_from(["f:a", "f:b", "f:c", 'k:{"name":"x"}', "v:1", "i:0"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(elements, max_size=4).map(tuple), max_size=10))
def test_fields_v1_trie_is_byte_for_byte_the_two_pass_one(paths: list[Path]) -> None:
    assert same_bytes(to_fields_v1(paths), slow_trie(paths))
    assert same_bytes(to_fields_v1(set(paths)), slow_trie(set(paths)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "null", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "null"]), inner,
                                                                max_size=3),
    max_leaves=20,
)


def slow_drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: slow_drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [slow_drop_nulls(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_drop_nulls_drops_every_null_field_and_nothing_else(value: Any) -> None:
    expected = slow_drop_nulls(value)
    assert same_bytes(drop_nulls(value), expected)
    assert same_bytes(value, expected)  # in place


def report(r: Any) -> tuple[list[Any], list[Any]]:
    return ([(c.field, c.message) for c in r.unknown], [(c.field, c.message) for c in r.type_errors])


bad_statuses = st.fixed_dictionaries({}, optional={
    "phase": st.sampled_from(["Running", 5, True]),
    "podIP": st.sampled_from(["10.0.0.1", ["x"]]),
    "bogus": st.just(1),
    "conditions": st.lists(st.fixed_dictionaries({"type": st.just("Ready")}, optional={
        "status": st.sampled_from(["True", 1]), "extra": st.just("x"),
        "lastTransitionTime": st.sampled_from([T1, "yesterday"])}), max_size=2),
})


@settings(max_examples=200, deadline=None)
@given(bad_statuses, labels)
def test_changed_field_check_reports_what_the_full_check_reports(status: dict[str, Any],
                                                                   new_labels: dict[str, str]) -> None:
    """Against a stored (valid) object, walking only what changed finds
    every unknown field and type error the whole walk finds, in order."""
    old = created()
    assert report(check_fields(old, POD)) == ([], [])
    new = copy.deepcopy(old)
    new["status"] = status
    new["metadata"]["labels"] = new_labels
    assert report(check_changed_fields(new, old, POD)) == report(check_fields(new, POD))


def test_changed_field_check_is_strict_about_types() -> None:
    """``1 == True`` in Python; a boolean where an integer was is a change."""
    old = created()
    old["status"]["containerStatuses"] = [{"name": "app", "restartCount": 1}]
    new = copy.deepcopy(old)
    new["status"]["containerStatuses"][0]["restartCount"] = True
    assert report(check_changed_fields(new, old, POD))[1] == report(check_fields(new, POD))[1] != []


status_patches = st.fixed_dictionaries({}, optional={
    "phase": st.sampled_from(["Running", None]), "podIP": st.sampled_from(["10.0.0.9", None]),
    "conditions": conds, "qosClass": st.none(),
}) | st.none()


@settings(max_examples=200, deadline=None)
@given(statuses, status_patches, st.sampled_from([MERGE, STRATEGIC]), st.booleans())
def test_status_only_patch_equals_the_whole_object_patch(status: dict[str, Any], patch: Any, media: str,
                                                          has_status: bool) -> None:
    live = created()
    if has_status:
        live["status"] = status
    else:
        live.pop("status")
    before = copy.deepcopy(live)
    body = orjson.dumps({"status": patch})
    fast = apply_status_patch(live, body, media, POD)
    assert fast is not None
    assert same_bytes(fast, apply_patch(live, body, media, POD, field_manager=None, force=False, now=T1))
    assert same_bytes(live, before)  # current is left as it was
    assert fast["metadata"] is not live["metadata"]  # the writer's managedFields go into a map of its own


def test_status_only_patch_leaves_other_patches_to_the_general_path() -> None:
    live = created()
    for body, media in ((b'{"status":{},"metadata":{"labels":null}}', MERGE),
                        (b'{"status":{},"$setElementOrder/conditions":[]}', STRATEGIC),
                        (b'[{"op":"add","path":"/status/phase","value":"x"}]', "application/json-patch+json"),
                        (b'"status"', MERGE),
                        (b"status: {}", "application/apply-patch+yaml")):
        assert apply_status_patch(live, body, media, POD) is None
