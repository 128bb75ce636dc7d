"""The wire format: JSON only, versioned, every field validated."""
import json

import pytest

from trackable import messages
from trackable.exceptions import MalformedMessage

pytestmark = pytest.mark.no_broker

TS = 1_732_270_000_123


def test_round_trip():
    body = messages.build([("shop.articledata", "shop.article", 5, "impressions", 1, TS)], message_id="a" * 32)
    assert json.loads(body) == {"v": 1, "id": "a" * 32, "e": [["shop.articledata", "shop.article", 5, "impressions", 1, TS]]}
    parsed = messages.parse(body)
    assert parsed.id == "a" * 32
    assert parsed.events == [messages.Event("shop.articledata", "shop.article", 5, "impressions", 1, TS)]


def test_string_pk_and_negative_amount():
    body = messages.build([("a.b", "a.c", "9f1c", "score", -3, TS)])
    assert messages.parse(body).events[0].pk == "9f1c"
    assert messages.parse(body).events[0].amount == -3


def test_ids_are_unique_hex():
    ids = {messages.new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(messages._ID.fullmatch(i) for i in ids)


def test_ids_made_later_sort_later(monkeypatch):
    # The ledger's index takes time-ordered ids at its end; the clock is injected, not read.
    clock = iter([1_700_000_000_000_000_000, 1_700_000_000_001_000_000, 4_102_444_799_999_000_000])
    monkeypatch.setattr(messages.time, "time_ns", lambda: next(clock))
    first, second, last = messages.new_id(), messages.new_id(), messages.new_id()
    assert first[:12] == "018bcfe56800" and second[:12] == "018bcfe56801" and last[:12] == "03bb2cc3d7ff"
    assert first < second < last
    assert messages.parse(messages.build([("a.b", "a.c", 1, "hits", 1, TS)], last)).id == last


def event(**changes):
    base = {"v": 1, "id": "b" * 32, "e": [["a.b", "a.c", 1, "hits", 1, TS]]}
    base.update(changes)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\x80\x04\x95pickle", "body is not JSON"),
        (b'{"v":1,"id":"', "body is not JSON"),
        (b"[1,2]", "body is a JSON list, not an object"),
        (event(v=2), "version is 2, this folder reads version 1"),
        (event(v=True), "version is True, this folder reads version 1"),
        (event(id="x"), "id is not 32 lowercase hex digits"),
        (event(e=[]), "e is not a non-empty list of events"),
        (event(e=[["a.b", "a.c", 1, "hits", 1]]), "event 0 is not a list of 6 items"),
        (event(e=[["A B", "a.c", 1, "hits", 1, TS]]), "event 0: data model label 'A B' is not 'app_label.model'"),
        (event(e=[["a.b", "a.c", None, "hits", 1, TS]]), "event 0: parent pk 'None' is not an integer or a short string"),
        (event(e=[["a.b", "a.c", True, "hits", 1, TS]]), "event 0: parent pk 'True' is not an integer or a short string"),
        (event(e=[["a.b", "a.c", 1, "drop table", 1, TS]]), "event 0: field 'drop table' is not a field name"),
        (event(e=[["a.b", "a.c", 1, "hits", 0, TS]]), "event 0: amount '0' is not a non-zero integer within ±2147483647"),
        (event(e=[["a.b", "a.c", 1, "hits", 1.5, TS]]), "event 0: amount '1.5' is not a non-zero integer within ±2147483647"),
        (event(e=[["a.b", "a.c", 1, "hits", 1, 12]]), "event 0: timestamp '12' is not milliseconds between 2000 and 2100"),
        (b"[" * 100000 + b"]" * 100000, "body is not JSON"),
    ],
)
def test_malformed_bodies_say_why(body, reason):
    with pytest.raises(MalformedMessage) as err:
        messages.parse(body)
    assert str(err.value).startswith(reason)


def test_unknown_keys_are_refused():
    body = json.dumps({"v": 1, "id": "c" * 32, "e": [["a.b", "a.c", 1, "hits", 1, TS]], "x": 1})
    with pytest.raises(MalformedMessage) as err:
        messages.parse(body)
    assert str(err.value) == "keys are ['e', 'id', 'v', 'x'], expected ['e', 'id', 'v']"


def test_oversized_body_is_refused():
    with pytest.raises(MalformedMessage) as err:
        messages.parse(b" " * 2000, max_bytes=1000)
    assert str(err.value) == "body is 2000 bytes, over the limit of 1000"
