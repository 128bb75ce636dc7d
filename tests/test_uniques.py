"""Unique visitors: the hash on the request path, the wire, the sketch union in the fold, reading back."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.test import override_settings
from django.test.client import RequestFactory

from tests.helpers import fold, publish_raw
from tests.testapp.models import Article, Page, PageData
from trackable import messages, sketches, uniques, visitors
from trackable.exceptions import MalformedMessage
from trackable.messaging import IncrementMessage, send_increment_message, send_message
from trackable.models import VisitorSalt

pytestmark = pytest.mark.django_db(transaction=True)

UTC = timezone.utc
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """Pin the visitors' clock to NOON (tests move it with clock.at = ...) and load that day's salts."""

    class Clock:
        at = NOON

        def __call__(self) -> float:
            return self.at.timestamp()

    fake = Clock()
    monkeypatch.setattr(visitors, "clock", fake)
    visitors.reset()
    visitors.load_salts()
    yield fake
    visitors.reset()


def request(ip: str = "203.0.113.7", agent: str = FIREFOX):
    return RequestFactory().get("/", REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)


def ts(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def send_view(page: Page, req, moment: datetime = NOON, field: str = "views", **kwargs) -> dict:
    """Send like a view does, with the event time pinned; return what was built."""
    message = IncrementMessage(req, page, field, **kwargs)
    grouped = message.build(ts(moment))
    from trackable.delivery import deliver

    for label, events in grouped.items():
        deliver(messages.build(events), label)
    return grouped


# -- the wire --------------------------------------------------------------------------------------


def test_a_seven_item_event_carries_the_visitor_hash_and_six_items_still_parse():
    body = messages.build([["testapp.pagedata", "testapp.page", 1, "views", 1, ts(NOON), {"u": "0123456789abcdef"}],
                           ["testapp.pagedata", "testapp.page", 1, "views", 1, ts(NOON)]])
    parsed = messages.parse(body)
    assert parsed.events[0].extras == {"u": "0123456789abcdef"}
    assert parsed.events[1].extras is None


@pytest.mark.parametrize(
    "extras, reason",
    [
        ({}, "event 0: the 7th item is not a non-empty object of extras"),
        ("u", "event 0: the 7th item is not a non-empty object of extras"),
        ({"u": "0123456789ABCDEF"}, "event 0: visitor '0123456789ABCDEF' is not 16 lowercase hex digits"),
        ({"u": "203.0.113.7"}, "event 0: visitor '203.0.113.7' is not 16 lowercase hex digits"),
        ({"u": 12}, "event 0: visitor '12' is not 16 lowercase hex digits"),
        ({"ip": "x"}, "event 0: extras ['ip'] are unknown; known: ['d', 'u']"),
    ],
)
def test_bad_extras_are_malformed_with_a_reason(extras, reason):
    body = json.dumps({"v": 1, "id": "a" * 32, "e": [["a.b", "a.c", 1, "hits", 1, ts(NOON), extras]]})
    with pytest.raises(MalformedMessage) as err:
        messages.parse(body)
    assert str(err.value) == reason


# -- the hash on the request path --------------------------------------------------------------------


def test_the_hash_is_stable_within_a_day_and_changes_with_the_salt(clock):
    first = visitors.visitor_hash(request())
    assert len(first) == 16 and int(first, 16) >= 0
    assert visitors.visitor_hash(request()) == first
    assert visitors.visitor_hash(request(ip="203.0.113.8")) != first
    assert visitors.visitor_hash(request(agent=FIREFOX + " x")) != first
    clock.at = NOON + timedelta(days=1)
    visitors.load_salts()
    assert visitors.visitor_hash(request()) != first


def test_the_hash_is_the_documented_keyed_blake2b_of_the_identity(clock):
    """The fast path computes exactly what the docs say: no hash changes when the code gets faster."""
    import hashlib
    import hmac

    from django.conf import settings as django_settings

    salt = bytes(VisitorSalt.objects.get(period_start__lte=NOON, period_end__gt=NOON).salt)
    key = hmac.digest(django_settings.SECRET_KEY.encode(), salt, "sha256")

    def expected(material: bytes) -> str:
        return hashlib.blake2b(material, digest_size=8, key=key, person=b"trackable-uv").hexdigest()

    long_agent = "Mozilla/5.0 é " + "x" * 600  # cut at TRACKABLE_USER_AGENT_MAX_LENGTH (512) characters
    assert visitors.visitor_hash(request()) == expected(b"r\x00203.0.113.7\x00" + FIREFOX.encode())
    assert visitors.visitor_hash(request(agent=long_agent)) == expected(b"r\x00203.0.113.7\x00" + long_agent[:512].encode())
    assert visitors.visitor_hash(None, "user:7") == expected(b"x\x00user:7")
    assert visitors.visitor_hash(None, 7) == expected(b"x\x007")
    assert visitors.visitor_hash(request(), "user:7") == expected(b"x\x00user:7")
    with override_settings(TRACKABLE_VISITOR_IDENTITY="session"):
        with_session = request()
        with_session.session = type("Session", (), {"session_key": "k" * 32})()
        assert visitors.visitor_hash(with_session) == expected(b"s\x00" + b"k" * 32)
    with override_settings(TRACKABLE_VISITOR_IDENTITY="user"):
        signed_in = request()
        signed_in.user = type("User", (), {"is_authenticated": True, "pk": 42})()
        assert visitors.visitor_hash(signed_in) == expected(b"u\x0042")


def test_old_salts_are_deleted_when_their_day_ends(clock):
    assert [(s.period_start.day, s.period_end.day) for s in VisitorSalt.objects.all()] == [(10, 11), (11, 12)]
    clock.at = NOON + timedelta(days=1)
    visitors.load_salts()
    assert [(s.period_start.day, s.period_end.day) for s in VisitorSalt.objects.all()] == [(11, 12), (12, 13)]


def test_every_process_reads_the_same_salt_back(clock):
    before = visitors.visitor_hash(request())
    visitors.reset()
    visitors.load_salts()  # another process: the rows exist, it uses them
    assert visitors.visitor_hash(request()) == before


def test_the_request_path_makes_no_query(django_assert_num_queries):
    page = Page.objects.create(path="/a")
    with django_assert_num_queries(0):
        grouped = IncrementMessage(request(), page, "views").build(ts(NOON))
    assert grouped["testapp.pagedata"][0][6]["u"] == visitors.visitor_hash(request())


def test_without_a_loaded_salt_the_view_is_counted_without_its_visitor(monkeypatch):
    started = []
    monkeypatch.setattr(visitors, "_load_in_background", lambda: started.append(1))
    visitors.reset()
    before = visitors.stats["no_salt"]
    page = Page.objects.create(path="/a")
    event = IncrementMessage(request(), page, "views").build(ts(NOON))["testapp.pagedata"][0]
    assert len(event) == 6
    assert visitors.stats["no_salt"] == before + 1
    assert started == [1]


def test_an_explicit_visitor_is_hashed_and_wins_over_the_request():
    page = Page.objects.create(path="/a")
    identity = "user:4d1f7c29-secret"  # long and odd enough never to appear in a 16-hex-digit hash by chance
    one = IncrementMessage(request(ip="198.51.100.1"), page, "views", visitor=identity).build(ts(NOON))
    two = IncrementMessage(request(ip="198.51.100.2"), page, "views", visitor=identity).build(ts(NOON))
    hashed = one["testapp.pagedata"][0][6]["u"]
    assert hashed == two["testapp.pagedata"][0][6]["u"]
    assert "4d1f7c29" not in json.dumps(one) and "198.51.100" not in json.dumps(one)


@override_settings(TRACKABLE_VISITOR_IDENTITY="session")
def test_session_identity_uses_the_session_key_and_falls_back_to_the_request():
    class Session:
        session_key = "k" * 32

    with_session = request()
    with_session.session = Session()
    other_ip = request(ip="198.51.100.9")
    other_ip.session = Session()
    assert visitors.visitor_hash(with_session) == visitors.visitor_hash(other_ip)
    assert visitors.visitor_hash(request()) != visitors.visitor_hash(with_session)


def test_events_of_counters_without_unique_fields_carry_nothing():
    article = Article.objects.create(title="a")
    event = IncrementMessage(request(), article, "impressions").build(ts(NOON))["testapp.articletrackabledata"][0]
    assert len(event) == 6


def test_decrements_carry_no_visitor():
    page = Page.objects.create(path="/a")
    event = IncrementMessage(request(), page, "views", -1).build(ts(NOON))["testapp.pagedata"][0]
    assert len(event) == 6


@override_settings(TRACKABLE_USER_AGENT_FILTERING=True)
def test_spiders_are_not_visitors():
    page = Page.objects.create(path="/a")
    send_increment_message(request(agent=GOOGLEBOT), page, "views")
    send_increment_message(request(), page, "views")
    fold(PageData)
    row = PageData.objects.get()
    assert (row.views, row.spider_views) == (1, 1)
    assert uniques.uniques(page, "visitors") == sketches.Estimate(1, 1, 1)


# -- fold and read --------------------------------------------------------------------------------


def test_repeat_views_count_once_and_the_fold_unions_batches():
    page = Page.objects.create(path="/a")
    for _round in range(2):
        for i in range(150):
            send_view(page, request(ip=f"10.0.{i // 250}.{i % 250}"))
        fold(PageData, batch_size=50)
    row = PageData.objects.get()
    assert row.views == 300
    assert uniques.uniques(page, "visitors") == sketches.Estimate(150, 150, 150)
    assert uniques.uniques(page, "sharers") == sketches.Estimate(0, 0, 0)


def test_a_unique_field_of_some_counters_counts_only_their_visitors():
    page = Page.objects.create(path="/a")
    send_message(request(ip="10.0.0.1"), page, {"views": 1, "shares": 1})
    send_increment_message(request(ip="10.0.0.2"), page, "views")
    fold(PageData)
    assert uniques.uniques(page, "visitors").estimate == 2
    assert uniques.uniques(page, "sharers").estimate == 1


def test_a_decrement_in_a_batch_with_visitors_stops_at_zero_on_new_and_existing_rows():
    page = Page.objects.create(path="/a")
    day2 = NOON + timedelta(days=1)
    event = ["testapp.pagedata", "testapp.page", page.pk]
    publish_raw(messages.build([[*event, "shares", 2, ts(NOON), {"u": "0000000000000001"}]]), "testapp.pagedata")
    fold(PageData)
    publish_raw(messages.build([
        [*event, "shares", -5, ts(NOON)],  # 2 - 5: the existing row's counter stops at 0
        [*event, "views", 1, ts(NOON), {"u": "0000000000000002"}],
        [*event, "shares", -1, ts(day2)],  # a new row: 0, not -1
        [*event, "views", 1, ts(day2), {"u": "0000000000000003"}],
    ]), "testapp.pagedata")
    assert fold(PageData).malformed == 0
    rows = sorted(PageData.objects.values_list("collected_during", "views", "shares"))
    assert rows == [(NOON.replace(hour=0), 1, 0), (day2.replace(hour=0), 1, 0)]
    assert uniques.uniques(page, "visitors").estimate == 3
    assert uniques.uniques(page, "sharers").estimate == 1


def test_a_redelivered_message_changes_no_estimate():
    page = Page.objects.create(path="/a")
    hashes = [visitors.visitor_hash(None, f"user:{i}") for i in range(20)]
    body = messages.build([["testapp.pagedata", "testapp.page", page.pk, "views", 1, ts(NOON), {"u": h}] for h in hashes])
    publish_raw(body, "testapp.pagedata")
    publish_raw(body, "testapp.pagedata")
    result = fold(PageData)
    assert (result.messages, result.duplicates) == (1, 1)
    assert PageData.objects.get().views == 20
    assert uniques.uniques(page, "visitors").estimate == 20


@override_settings(TRACKABLE_VISITOR_SALT_ROTATION="month")
def test_a_window_is_the_union_of_its_days_never_their_sum(clock):
    visitors.reset()
    visitors.load_salts()
    page = Page.objects.create(path="/a")
    for day in range(3):  # the same 40 people each day, plus 10 new ones a day
        for i in list(range(40)) + list(range(100 + 10 * day, 110 + 10 * day)):
            send_view(page, request(ip=f"10.1.0.{i}"), NOON + timedelta(days=day))
    fold(PageData)
    assert PageData.objects.count() == 3
    start, end = NOON - timedelta(days=1), NOON + timedelta(days=3)
    assert uniques.uniques(page, "visitors", start, end).estimate == 70
    series = uniques.uniques_series(page, "visitors", NOON.replace(hour=0), NOON.replace(hour=0) + timedelta(days=4))
    assert [p.value.estimate for p in series] == [50, 50, 50, 0]
    assert uniques.deduplicated_within(start, end) is None


def test_a_window_longer_than_the_salt_says_so():
    day = NOON.replace(hour=0)
    assert uniques.deduplicated_within(day, day + timedelta(days=1)) is None
    assert uniques.deduplicated_within(day, day + timedelta(days=30)) == "1 day"


def test_top_and_queryset_uniques():
    pages = [Page.objects.create(path=f"/{i}") for i in range(3)]
    for n, page in zip((5, 9, 2), pages, strict=False):
        for i in range(n):
            send_view(page, request(ip=f"10.2.0.{i}"))
    fold(PageData)
    top = uniques.top_uniques(Page, "visitors", n=2)
    assert [(e.object_id, e.value.estimate) for e in top] == [(pages[1].pk, 9), (pages[0].pk, 5)]
    assert uniques.queryset_uniques(Page.objects.all(), "visitors").estimate == 9  # the same 9 IPs overall
    assert uniques.queryset_uniques(Page.objects.filter(pk=pages[2].pk), "visitors").estimate == 2


def test_a_counter_name_is_not_a_unique_field():
    page = Page.objects.create(path="/a")
    with pytest.raises(uniques.QueryError) as err:
        uniques.uniques(page, "views")
    assert str(err.value) == "'views' is not a UniqueVisitors field of Page's data models; those are: sharers, visitors."


def test_a_fold_deletes_the_salts_of_ended_periods(clock):
    clock.at = NOON + timedelta(days=1)  # no web process loads salts on day 11: the fold deletes day 10's
    fold(PageData)
    assert [s.period_start.day for s in VisitorSalt.objects.all()] == [11]


@pytest.mark.no_broker
def test_the_relay_carries_a_keys_visitors_once_each_in_one_event():
    from trackable.relay import batch_messages

    event = ["testapp.pagedata", "testapp.page", 1, "views", 1, ts(NOON)]
    events = [
        [*event, {"u": "00000000000000aa"}],
        [*event, {"u": "00000000000000aa"}],
        [*event, {"u": "00000000000000bb"}],
        event,
        [*event[:4], 1, ts(NOON) + 60_000, {"u": "00000000000000aa"}],  # the next minute: an event of its own
    ]
    [(label, _, out)] = batch_messages("seg", 0, 100, events)
    assert label == "testapp.pagedata"
    assert [e[4:] for e in out] == [
        (3, ts(NOON), {"u": ["00000000000000aa", "00000000000000bb"]}),
        (1, ts(NOON)),
        (1, ts(NOON) + 60_000, {"u": "00000000000000aa"}),
    ]
    assert messages.parse(messages.build(out)).events[0].extras == {"u": ["00000000000000aa", "00000000000000bb"]}


@pytest.mark.no_broker
def test_the_relay_splits_many_visitors_and_big_sums_keeping_every_count():
    from trackable.relay import batch_messages

    event = ["testapp.pagedata", "testapp.page", 1, "views"]
    hashes = [f"{i:016x}" for i in range(2500)]
    events = [[*event, 1, ts(NOON), {"u": h}] for h in hashes + hashes[:100]]  # 100 of them came twice
    events += [[*event, messages.MAX_AMOUNT, ts(NOON), {"u": hashes[0]}], [*event, -5, ts(NOON)]]
    [(_, _, out)] = batch_messages("seg", 0, 100, events)
    carried = [e[6]["u"] for e in out if len(e) == 7]
    assert [len(c) for c in carried] == [1000, 1000, 500]  # at most MAX_VISITORS an event
    assert sorted(h for c in carried for h in c) == hashes  # each visitor once
    assert sum(e[4] for e in out) == 2600 + messages.MAX_AMOUNT - 5  # every count kept
    assert all(0 < abs(e[4]) <= messages.MAX_AMOUNT for e in out) and all(e[4] > 0 for e in out if len(e) == 7)
    assert batch_messages("seg", 0, 100, events) == batch_messages("seg", 0, 100, events)  # a republish is identical
    parsed = messages.parse(messages.build(out))
    assert sum(len(e.extras["u"]) for e in parsed.events if e.extras) == 2500


@pytest.mark.parametrize(
    "visitors_, reason",
    [
        ([], "event 0: the visitors are a list of 0, not of 1 to 1000"),
        (["0123456789abcdef"] * 1001, "event 0: the visitors are a list of 1001, not of 1 to 1000"),
        (["0123456789abcdef", "198.51.100.7"], "event 0: visitor '198.51.100.7' is not 16 lowercase hex digits"),
        (["0123456789abcdef", 7], "event 0: visitor '7' is not 16 lowercase hex digits"),
        ([["0123456789abcdef"]], "event 0: visitor \"['0123456789abcdef']\" is not 16 lowercase hex digits"),
    ],
)
def test_a_bad_list_of_visitors_is_malformed_with_a_reason(visitors_, reason):
    body = json.dumps({"v": 1, "id": "a" * 32, "e": [["a.b", "a.c", 1, "hits", 1, ts(NOON), {"u": visitors_}]]})
    with pytest.raises(MalformedMessage) as err:
        messages.parse(body)
    assert str(err.value) == reason


def test_visitors_carried_in_lists_fold_to_exactly_what_one_hash_an_event_folds_to():
    """The relay's lists change nothing in rows: the same counts, the same estimates as a clean fold."""
    from trackable.relay import batch_messages

    relayed, plain = Page.objects.create(path="/relayed"), Page.objects.create(path="/plain")
    rng = __import__("random").Random(3)
    sends = [(f"{rng.randrange(1500):016x}", ts(NOON) + rng.randrange(5) * 90_000) for _ in range(3000)]

    def events(page):
        return [["testapp.pagedata", "testapp.page", page.pk, f, 1, t, {"u": h}] for h, t in sends for f in ("views", "shares")]

    for label, message_id, chunk in batch_messages("seg", 0, 100, events(relayed)):
        publish_raw(messages.build(chunk, message_id), label)
    mixed = events(plain)
    for start in range(0, len(mixed), 100):
        publish_raw(messages.build(mixed[start : start + 100]), "testapp.pagedata")
    fold(PageData)
    rows = {page: list(PageData.objects.filter(object_id=page.pk).order_by("collected_during")
                       .values_list("collected_during", "views", "shares")) for page in (relayed, plain)}
    assert rows[relayed] == rows[plain] and sum(r[1] for r in rows[plain]) == 3000
    for field in ("visitors", "sharers"):
        assert uniques.uniques(relayed, field) == uniques.uniques(plain, field)
    assert uniques.uniques(plain, "visitors").estimate == pytest.approx(len({h for h, _ in sends}), rel=0.033)


def test_reading_one_objects_sketches_goes_through_django_and_on_postgresql_in_binary(django_assert_num_queries):
    """uniques() and uniques_series() fetch sketches as bytes (binary format on PostgreSQL: half the bytes)."""
    from django.db import connection

    page = Page.objects.create(path="/a")
    for day in range(3):
        for i in range(5 + day):
            send_view(page, request(ip=f"10.3.0.{i}"), NOON + timedelta(days=day))
    fold(PageData)
    formats = []

    def spy(execute, sql, params, many, context):
        formats.append(getattr(context["cursor"].cursor, "format", None))
        return execute(sql, params, many, context)

    start = NOON.replace(hour=0)
    with django_assert_num_queries(2), connection.execute_wrapper(spy):  # logged and wrapped like any query
        total = uniques.uniques(page, "visitors", start, start + timedelta(days=3))
        series = uniques.uniques_series(page, "visitors", start, start + timedelta(days=3))
    assert total == sketches.Estimate(7, 7, 7)  # the union: 7 addresses, never 5 + 6 + 7
    assert [(p.start, p.value.estimate) for p in series] == [(start + timedelta(days=d), 5 + d) for d in range(3)]
    if connection.vendor == "postgresql":
        import psycopg

        assert formats == [psycopg.pq.Format.BINARY] * 2
        for _ in range(6):  # bound on the server, yet never prepared (Django's prepare_threshold: None)
            uniques.uniques(page, "visitors", start, start + timedelta(days=3))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (0,)  # a pooler in transaction mode (PgBouncer) needs none
    assert uniques.fetch_rows(PageData.objects.filter(pk__in=[]).values_list("visitors")) == []
    rows = uniques.fetch_rows(PageData.objects.order_by("collected_during").values_list("collected_during", "visitors"))
    assert [(bucket, type(sketch)) for bucket, sketch in rows] == [(start + timedelta(days=d), bytes) for d in range(3)]


def test_the_fold_moves_sketches_as_bytes_and_a_second_fold_unions_onto_the_stored_ones():
    from django.db import connection

    page = Page.objects.create(path="/a")
    for i in range(30):
        send_view(page, request(ip=f"10.4.0.{i}"))
    fold(PageData)
    for i in range(20, 50):  # 10 of them again, 20 new
        send_view(page, request(ip=f"10.4.0.{i}"))
    sketch_queries = []

    def spy(execute, sql, params, many, context):
        if '"visitors"' in sql:
            sketch_queries.append((sql.split()[0], getattr(context["cursor"].cursor, "format", None)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        fold(PageData)
    assert uniques.uniques(page, "visitors") == sketches.Estimate(50, 50, 50)
    # Pass 1 finds the row and locks it, pass 2 reads its sketch, pass 3 writes counters and union at once.
    assert [verb for verb, _ in sketch_queries] == ["INSERT", "SELECT", "UPDATE"]
    if connection.vendor == "postgresql":
        import psycopg

        assert {fmt for _, fmt in sketch_queries} == {psycopg.pq.Format.BINARY}


def test_visitors_a_dense_sketch_already_holds_leave_the_row_unwritten():
    """Most visitors of a busy row change none of its 4 096 registers: then only the counters are written."""
    from django.db import connection

    page = Page.objects.create(path="/busy")
    hashes = [f"{i:016x}" for i in range(3000)]
    event = ["testapp.pagedata", "testapp.page", page.pk, "views", 1, ts(NOON)]
    publish_raw(messages.build([[*event, {"u": h}] for h in hashes]), "testapp.pagedata")
    fold(PageData)
    before = uniques.uniques(page, "visitors")
    statements = []

    def spy(execute, sql, params, many, context):
        if '"testapp_pagedata"' in sql:
            statements.append((sql.split()[0], '"visitors" = ' in sql))
        return execute(sql, params, many, context)

    publish_raw(messages.build([[*event, {"u": hashes[7]}], [*event, {"u": hashes[9]}]]), "testapp.pagedata")
    with connection.execute_wrapper(spy):
        fold(PageData)
    # Locked by the upsert, read, unioned, found unchanged: the UPDATE writes the counters, not the sketch.
    assert statements == [("INSERT", False), ("SELECT", False), ("UPDATE", False)]
    assert PageData.objects.get().views == 3002
    assert uniques.uniques(page, "visitors") == before
    assert before.lower <= 3000 <= before.upper
