import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.client.errors import ApiError, GoneError
from corral.client.watchstream import LineSplitter, WatchDecodeError, decode_event


def event(type_: str, name: str) -> bytes:
    return orjson.dumps({"type": type_, "object": {"metadata": {"name": name}}}) + b"\n"


def test_lines_split_across_chunks_are_reassembled():
    s = LineSplitter()
    data = event("ADDED", "a") + event("MODIFIED", "b")
    assert s.feed(data[:5]) == []
    assert s.feed(data[5:20]) == []
    lines = s.feed(data[20:])
    assert [decode_event(line) for line in lines] == [
        ("ADDED", {"metadata": {"name": "a"}}),
        ("MODIFIED", {"metadata": {"name": "b"}}),
    ]
    assert s.finish() == b""


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=20))
def test_any_chunking_yields_the_same_events(cuts):
    data = b"".join(event("ADDED", f"pod-{i}") for i in range(8))
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    s = LineSplitter()
    lines: list[bytes] = []
    for a, b in zip(points, points[1:], strict=False):
        lines += s.feed(data[a:b])
    assert [decode_event(line)[1]["metadata"]["name"] for line in lines] == [
        f"pod-{i}" for i in range(8)
    ]


def test_last_line_without_newline_is_kept_for_finish():
    s = LineSplitter()
    assert s.feed(event("ADDED", "a").rstrip(b"\n")) == []
    assert decode_event(s.finish()) == ("ADDED", {"metadata": {"name": "a"}})


def test_line_longer_than_bound_is_refused_across_chunks():
    s = LineSplitter(max_line=10)
    s.feed(b"12345")
    with pytest.raises(WatchDecodeError, match="longer than 10"):
        s.feed(b"678901")
    s2 = LineSplitter(max_line=10)
    assert s2.feed(b"0123456789\n") == [b"0123456789"]
    with pytest.raises(WatchDecodeError):
        s2.feed(b"0123456789A\n")


def test_blank_lines_are_keepalives():
    assert decode_event(b"\n") is None
    assert decode_event(b"  ") is None


def test_error_event_410_raises_gone():
    line = orjson.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                                     "reason": "Expired", "message": "too old"}})
    with pytest.raises(GoneError) as info:
        decode_event(line)
    assert info.value.status == 410 and info.value.reason == "Expired"


def test_error_event_other_code_raises_matching_error():
    line = orjson.dumps({"type": "ERROR", "object": {"code": 500, "message": "boom"}})
    with pytest.raises(ApiError) as info:
        decode_event(line)
    assert info.value.status == 500 and "boom" in info.value.message


@pytest.mark.parametrize(
    "line, field",
    [
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"type": "WHAT", "object": {}}', "type"),
        (b'{"type": "ADDED", "object": 3}', "object"),
    ],
)
def test_malformed_events_name_the_problem(line, field):
    with pytest.raises(WatchDecodeError, match=field):
        decode_event(line)


def test_bookmark_is_yielded():
    line = orjson.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}})
    assert decode_event(line) == ("BOOKMARK", {"metadata": {"resourceVersion": "42"}})
