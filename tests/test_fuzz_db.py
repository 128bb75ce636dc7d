"""Fuzz at the database boundary: values at each column type's limits, on the real databases.

Every message either commits or is dead-lettered with a reason; a message refused for an overflow would
overflow its row even now (no valid neighbour is lost); no row holds a value beyond its field's range;
the queue is empty afterwards.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from django.contrib.contenttypes.models import ContentType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import drain_dead_letters, fold
from tests.testapp.models import (
    Article,
    ArticleTotals,
    ArticleTrackableData,
    Player,
    PlayerTrackableData,
    Video,
    VideoTrackableData,
)
from trackable import messages, transport
from trackable.buckets import bucket_start
from trackable.upsert import field_range

pytestmark = pytest.mark.django_db(transaction=True)

TS = 1_796_000_000_000
BIG = 2**63 - 1
INT = 2**31 - 1

# target: (data model, parent model, counter field, initial values, amounts)
TARGETS = {
    "impressions": (ArticleTrackableData, Article, "impressions", [0, INT - 1, INT], [1, INT, 2**30]),
    "downloads": (ArticleTotals, Article, "downloads", [0, BIG - INT, BIG], [1, INT]),
    "score": (VideoTrackableData, Video, "score", [0, -INT, -INT - 1], [-1, -INT]),
    "quests": (PlayerTrackableData, Player, "quests", [0, INT], [1, INT]),
}
BAD_PKS = {
    Article: [2**63, -(2**63) - 1, 2**70, "12x", ""],
    Video: ["not-a-uuid", "0" * 33],
    Player: ["p" * 41, "a\x00b", ""],
}
EXTRA_GOOD_PKS = {Article: [BIG, -(2**63)], Video: [str(uuid.UUID(int=0))], Player: ["é" * 40, "p" * 40]}


def bucket(dm):
    granularity = getattr(dm, "granularity", None)
    moment = datetime.fromtimestamp(TS / 1000, tz=timezone.utc)
    return bucket_start(moment, granularity, timezone.utc) if granularity else None


def parent_pk(parent):
    if parent is Article:
        return Article.objects.create(title="a").pk
    if parent is Video:
        return str(Video.objects.create(title="v").pk)
    return Player.objects.get_or_create(handle="h" * 40)[0].pk


@st.composite
def scenarios(draw):
    names = draw(st.lists(st.sampled_from(sorted(TARGETS)), min_size=1, max_size=3, unique=True))
    initial = {name: draw(st.sampled_from(TARGETS[name][3])) for name in names}
    events = []
    for _ in range(draw(st.integers(1, 12))):
        name = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["row", "row", "row", "extra", "bad"]))
        amount = draw(st.sampled_from(TARGETS[name][4]))
        events.append((name, kind, draw(st.integers(0, 10)), amount))
    return initial, events


def setup_rows(initial):
    """Create one parent per target with a row at its initial value; return {name: pk}."""
    pks = {}
    for name, value in initial.items():
        dm, parent, field, _, _ = TARGETS[name]
        dm.objects.all().delete()
        pks[name] = parent_pk(parent)
        ct = ContentType.objects.get_for_model(parent)
        keys = {"collected_during": bucket(dm)} if bucket(dm) else {}
        dm.objects.create(content_type=ct, object_id=pks[name], **keys, **{field: value})
    return pks


@pytest.mark.timeout(600)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=scenarios())
def test_values_at_the_column_limits_are_counted_or_set_aside_never_lost(scenario):
    initial, events = scenario
    pks = setup_rows(initial)
    sent = {}
    for name, kind, pick, amount in events:
        dm, parent, field, _, _ = TARGETS[name]
        options = {"row": [pks[name]], "extra": EXTRA_GOOD_PKS[parent], "bad": BAD_PKS[parent]}[kind]
        pk = options[pick % len(options)]
        body = messages.build([(dm._meta.label_lower, parent._meta.label_lower, pk, field, amount, TS)])
        transport.publish(body, dm._meta.label_lower)
        sent[json.loads(body)["id"]] = (name, pk, amount, kind)

    result = fold(idle_timeout=0.2)

    dead = {json.loads(body)["id"]: headers["x-trackable-error"] for body, headers in drain_dead_letters()}
    assert result.messages + result.malformed == len(sent) and len(dead) == result.malformed
    assert all(sent[i][3] == "bad" for i in dead if dead[i].startswith("parent pk"))
    assert all(i in dead for i, (_, _, _, kind) in sent.items() if kind == "bad")
    finals = {}
    for name in initial:
        dm, parent, field, _, _ = TARGETS[name]
        internal = dm._meta.get_field(field).get_internal_type()
        low, high = field_range(internal)
        for object_id, value in dm.objects.values_list("object_id", field):
            assert low <= value <= high
            finals[(name, str(object_id))] = value
    expected = {(name, str(pk)): value for name, value in initial.items() for pk in [pks[name]]}
    for i, (name, pk, amount, _kind) in sent.items():
        if i not in dead:
            expected[(name, str(pk))] = expected.get((name, str(pk)), 0) + amount
    assert finals == expected
    for i, reason in dead.items():
        name, pk, amount, kind = sent[i]
        if kind != "bad":  # refused for an overflow: it would overflow its row even now
            low, high = field_range(TARGETS[name][0]._meta.get_field(TARGETS[name][2]).get_internal_type())
            assert not low <= finals.get((name, str(pk)), 0) + amount <= high, reason
            assert reason.startswith(f"adding {amount} to "), reason
    assert fold(idle_timeout=0.1).messages == 0
