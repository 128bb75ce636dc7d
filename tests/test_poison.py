"""Poison: thousands of hostile bodies mixed with valid ones never crash, stall or skew the fold."""
import json
import os
import pickle
import time

import pytest
from django.db.models import Sum
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers import drain_dead_letters, fold, publish_raw
from tests.testapp.models import Article, ArticleTrackableData
from trackable import messages

LABEL = "testapp.articletrackabledata"
PARENT = "testapp.article"
MAX_BYTES = 4096
NOW_MS = int(time.time() * 1000)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)

# Values that are wrong for each position of an event, so that a mutated event is malformed by construction.
WRONG = {
    0: st.one_of(st.none(), st.integers(), st.just("Not A Label"), st.just("testapp.ghost"), st.just("testapp.articletotals")),
    1: st.one_of(st.none(), st.integers(), st.just("testapp.video"), st.just("no dots")),
    2: st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),
        st.just(""),
        st.just("x" * 300),
        st.just("abc"),
        st.lists(st.integers(), max_size=2),
    ),
    3: st.one_of(st.none(), st.integers(), st.just("not a field"), st.just("click throughs"), st.just("nope")),
    4: st.one_of(
        st.none(), st.just(0), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3), st.integers(min_value=2**31)
    ),
    5: st.one_of(st.none(), st.booleans(), st.integers(max_value=10**9), st.floats(allow_nan=False), st.text(max_size=3)),
}


class Evil:
    """Unpickling this would create a file: proof that the folder never unpickles."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@st.composite
def junk(draw, pk, pwned):
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "truncated", "pickle", "oversized", "content-type"]))
    valid = messages.build([(LABEL, PARENT, pk, "impressions", 1, NOW_MS)])
    if kind == "bytes":
        return draw(st.binary(max_size=200)), "application/json"
    if kind == "json":
        value = draw(json_values)
        return json.dumps(value).encode(), "application/json"
    if kind == "mutated":
        position = draw(st.integers(0, 5))
        event = [LABEL, PARENT, pk, "impressions", 1, NOW_MS]
        event[position] = draw(WRONG[position])
        return json.dumps({"v": 1, "id": messages.new_id(), "e": [event]}).encode(), "application/json"
    if kind == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))], "application/json"
    if kind == "pickle":
        return pickle.dumps(Evil(pwned)), "application/x-python-serialize"
    if kind == "oversized":
        padding = " " * (MAX_BYTES + 1)
        return valid[:-1] + padding.encode() + b"}", "application/json"
    return valid, draw(
        st.sampled_from(["text/plain", "application/x-python-serialize", "application/x-yaml", "application/octet-stream"])
    )


@pytest.mark.django_db
@override_settings(TRACKABLE_MAX_MESSAGE_BYTES=MAX_BYTES)
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_bodies_are_set_aside_and_valid_ones_counted_exactly(data, tmp_path_factory):
    pwned = tmp_path_factory.getbasetemp() / "pwned"
    article, _ = Article.objects.get_or_create(title="target")
    before = ArticleTrackableData.objects.aggregate(n=Sum("impressions"))["n"] or 0
    bad = data.draw(st.lists(junk(article.pk, pwned), min_size=20, max_size=80))
    amounts = data.draw(st.lists(st.integers(1, 1000), min_size=1, max_size=20))
    mixed = [(b, ct, None) for b, ct in bad] + [(None, None, n) for n in amounts]
    order = data.draw(st.permutations(range(len(mixed))))
    for i in order:
        body, content_type, amount = mixed[i]
        if amount is not None:
            body = messages.build([(LABEL, PARENT, article.pk, "impressions", amount, NOW_MS)])
            content_type = "application/json"
        publish_raw(body, LABEL, content_type=content_type)

    result = fold(idle_timeout=0.3)

    assert result.malformed == len(bad), result.reasons
    assert (result.messages, result.events) == (len(amounts), len(amounts))
    after = ArticleTrackableData.objects.aggregate(n=Sum("impressions"))["n"]
    assert after - before == sum(amounts)
    assert len(drain_dead_letters()) == len(bad)
    assert not pwned.exists()
