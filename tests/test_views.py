"""Click-through and beacon views, template tags, the JSON/CSV API, the dashboard and the admin charts."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import override_settings
from django.urls import reverse

from tests.testapp.models import Article, ArticleHourlyData, ArticleTrackableData, Player, PlayerTrackableData, Video
from trackable import links, query
from trackable.admin import TrackableDataAdmin
from trackable.buckets import bucket_start
from trackable.messaging import process_messages

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def add_rows(model, obj, rows):
    ct = ContentType.objects.get_for_model(type(obj))
    model.objects.bulk_create(model(content_type=ct, object_id=obj.pk, collected_during=t, **v) for t, v in rows.items())


@pytest.fixture
def article(db):
    return Article.objects.create(title="Tides")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True)


def clicks(obj) -> int:
    process_messages()
    return query.total(obj, "click_throughs")


# -- click-through ---------------------------------------------------------------------------------------


def test_post_counts_and_redirects_to_the_objects_own_url_without_a_query(client, article, django_assert_num_queries):
    url = links.track_url(article, "click_throughs")
    with django_assert_num_queries(0):
        response = client.post(url)
    assert (response.status_code, response["Location"]) == (303, f"/articles/{article.pk}/")
    assert clicks(article) == 1


def test_get_redirects_but_never_counts(client, article, django_assert_num_queries):
    url = links.track_url(article, "click_throughs")
    with django_assert_num_queries(0):
        response = client.get(url, HTTP_SEC_PURPOSE="prefetch")
    assert (response.status_code, response["Location"]) == (302, f"/articles/{article.pk}/")
    assert client.get(url).status_code == 302
    assert clicks(article) == 0


def test_a_signed_external_target_is_followed(client, article):
    response = client.post(links.track_url(article, "click_throughs", "https://partner.example/offer?x=1"))
    assert (response.status_code, response["Location"]) == (303, "https://partner.example/offer?x=1")
    assert clicks(article) == 1


def test_a_tampered_token_is_refused(client, article):
    token = links.sign_link(article, "click_throughs", "/articles/1/")
    forged = token.replace(token.split(":")[0], links.sign_link(article, "click_throughs", "https://evil.example/").split(":")[0])
    for bad in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "nonsense"):
        response = client.post(reverse("trackable:track", args=[bad]))
        assert (response.status_code, response.content) == (400, b"This tracking link is not signed by this site.")
    assert clicks(article) == 0


def test_a_token_signed_by_another_site_is_refused(client, article):
    with override_settings(SECRET_KEY="another-site-entirely"):
        foreign = links.track_url(article, "click_throughs", "https://evil.example/")
    response = client.post(foreign)
    assert (response.status_code, response.content) == (400, b"This tracking link is not signed by this site.")
    assert clicks(article) == 0


def test_a_target_beside_the_token_is_refused(client, article):
    url = links.track_url(article, "click_throughs")
    for method in (client.get, client.post):
        response = method(url + "?next=https://evil.example/")
        assert response.status_code == 400
        assert response.content == (
            b"Tracking links redirect only to the target signed into them; remove the extra parameter."
        )
    assert clicks(article) == 0


@pytest.mark.parametrize("target", ["javascript:alert(1)", "//evil.example/", "evil.example", "/\\evil.example"])
def test_unsafe_targets_cannot_even_be_signed(article, target):
    with pytest.raises(links.BadLink):
        links.sign_link(article, "click_throughs", target)


@override_settings(TRACKABLE_LINK_MAX_AGE=60)
def test_an_expired_link_is_refused(client, article):
    with mock.patch("time.time", return_value=time.time() - 120):
        url = links.track_url(article, "click_throughs")
    response = client.post(url)
    assert (response.status_code, response.content) == (400, b"This tracking link has expired; reload the page that showed it.")


def test_a_link_to_a_field_that_is_not_counted_cannot_be_made(article):
    with pytest.raises(ValueError, match="'likes' is not a counter field"):
        links.sign_link(article, "likes")


# -- beacon ------------------------------------------------------------------------------------------------


def test_beacon_counts_and_answers_json_without_a_query(client, article, django_assert_num_queries):
    url = links.beacon_url(article, "click_throughs")
    with django_assert_num_queries(0):
        response = client.post(url, data="PING", content_type="text/ping")
    assert response.status_code == 202
    assert response.json() == {"counted": True, "field": "click_throughs"}
    assert clicks(article) == 1


def test_beacon_refuses_get_and_bad_tokens(client, article):
    url = links.beacon_url(article, "click_throughs")
    assert client.get(url).status_code == 405
    response = client.post(url[:-3] + "x/")
    assert response.status_code == 400
    assert response.json() == {"counted": False, "error": "This tracking link is not signed by this site."}
    assert clicks(article) == 0


def test_beacon_for_uuid_and_string_parents(client, db):
    video, player = Video.objects.create(title="V"), Player.objects.create(handle="ada")
    assert client.post(links.beacon_url(video, "plays")).json() == {"counted": True, "field": "plays"}
    assert client.post(links.beacon_url(player, "quests")).json() == {"counted": True, "field": "quests"}
    process_messages()
    assert (query.total(video, "plays"), query.total(player, "quests")) == (1, 1)


# -- template tags -------------------------------------------------------------------------------------------


def render(source: str, **context) -> str:
    return Template("{% load trackable_tags %}" + source).render(Context(context))


def test_tracked_link_renders_the_target_and_a_signed_beacon(article):
    html = render('{% tracked_link article "click_throughs" text="Read" class_="button" %}', article=article)
    match = re.fullmatch(r'<a href="/articles/(\d+)/" data-trackable-beacon="([^"]+)" class="button">Read</a>', html)
    assert match and int(match[1]) == article.pk
    token = match[2].split("/")[-2]
    assert links.read_link(token).field == "click_throughs"
    ping = render('{% tracked_link article "click_throughs" "https://x.example/" ping=True %}', article=article)
    assert ping.startswith('<a href="https://x.example/" ping="/trackable/beacon/') and ping.endswith(">Tides</a>")


def test_tracked_url_posts_to_the_click_through_view(client, article):
    url = render('{% tracked_url article "click_throughs" %}', article=article)
    assert client.post(url)["Location"] == article.get_absolute_url()


def test_count_and_chart_tags(article):
    today = bucket_start(datetime.now(UTC), "day")
    add_rows(ArticleTrackableData, article, {today: {"impressions": 4}, today - timedelta(days=10): {"impressions": 6}})
    assert render('{% trackable_count article "impressions" %}', article=article) == "10"
    assert render('{% trackable_count article "impressions" days=7 %}', article=article) == "4"
    chart = render('{% trackable_chart article "impressions" days=7 %}', article=article)
    assert chart.count('class="trackable-point"') == 7
    assert '<title id="trackable-chart-' in chart and 'role="img"' in chart
    assert chart.count("<tr><th scope=\"row\">") == 7
    assert f"<tr><th scope=\"row\">{today:%Y-%m-%d}</th><td>4</td></tr>" in chart


@override_settings(STATIC_URL="/static/")
def test_beacon_script_tag():
    assert render("{% trackable_beacon_script %}") == '<script src="/static/trackable/beacon.js" defer></script>'


# -- JSON API ----------------------------------------------------------------------------------------------------


def series_url(obj, **params) -> str:
    opts = obj._meta
    base = reverse("trackable:api-series", args=[opts.label_lower, obj.pk])
    return base + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_api_needs_staff_by_default(client, article, django_user_model, staff):
    url = series_url(article, field="impressions")
    assert client.get(url).status_code == 403
    assert client.get(url).json() == {"error": "You may not read tracking data; sign in as a permitted user."}
    client.force_login(django_user_model.objects.create_user("reader", password="pw"))
    assert client.get(url).status_code == 403
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_api_permission_is_a_setting(client, article):
    url = series_url(article, field="impressions")
    with override_settings(TRACKABLE_API_PERMISSION="trackable.api.allow_any"):
        assert client.get(url).status_code == 200
    with override_settings(TRACKABLE_API_PERMISSION="trackable.api.is_authenticated"):
        assert client.get(url).status_code == 403
    with override_settings(TRACKABLE_API_PERMISSION="nowhere.check"), pytest.raises(ImproperlyConfigured) as caught:
        client.get(url)
    assert str(caught.value).startswith("TRACKABLE_API_PERMISSION is 'nowhere.check', which cannot be imported")


def test_api_series_json_and_csv(client, article, staff):
    client.force_login(staff)
    add_rows(
        ArticleHourlyData,
        article,
        {utc(2026, 5, 1, 10): {"reads": 2}, utc(2026, 5, 1, 11): {"reads": 3}, utc(2026, 5, 3, 1): {"reads": 1}},
    )
    url = series_url(article, field="reads", start="2026-05-01", end="2026-05-04", granularity="day")
    assert client.get(url).json() == {
        "parent": "testapp.article",
        "pk": article.pk,
        "field": "reads",
        "granularity": "day",
        "tz": "UTC",
        "start": "2026-05-01T00:00:00+00:00",
        "end": "2026-05-04T00:00:00+00:00",
        "total": 6,
        "points": [["2026-05-01T00:00:00+00:00", 5], ["2026-05-02T00:00:00+00:00", 0], ["2026-05-03T00:00:00+00:00", 1]],
    }
    response = client.get(url + "&format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="testapp.article-{article.pk}-reads.csv"'
    assert response.content.decode() == (
        "bucket,reads\n2026-05-01T00:00:00+00:00,5\n2026-05-02T00:00:00+00:00,0\n2026-05-03T00:00:00+00:00,1\n"
    )
    paris = client.get(series_url(article, field="reads", start="2026-05-01", end="2026-05-02", tz="Europe/Paris")).json()
    assert paris["tz"] == "Europe/Paris" and paris["total"] == 5 and paris["points"][12] == ["2026-05-01T12:00:00+02:00", 2]


def test_api_totals_and_top(client, db, staff):
    client.force_login(staff)
    a, b = Article.objects.create(title="a"), Article.objects.create(title="b")
    add_rows(ArticleTrackableData, a, {utc(2026, 5, 1): {"impressions": 3, "click_throughs": 1}})
    add_rows(ArticleTrackableData, b, {utc(2026, 5, 2): {"impressions": 8}, utc(2025, 1, 1): {"impressions": 100}})
    totals = client.get(reverse("trackable:api-totals", args=["testapp.article", b.pk]) + "?fields=impressions,click_throughs")
    assert totals.json() == {
        "parent": "testapp.article",
        "pk": b.pk,
        "start": None,
        "end": None,
        "totals": {"impressions": 108, "click_throughs": 0},
    }
    top_url = reverse("trackable:api-top", args=["testapp.article"]) + "?field=impressions&start=2026-05-01&end=2026-06-01"
    assert client.get(top_url).json()["top"] == [{"pk": b.pk, "total": 8}, {"pk": a.pk, "total": 3}]
    assert client.get(top_url + "&n=1&format=csv").content.decode() == f"pk,impressions\n{b.pk},8\n"
    player = Player.objects.create(handle="ada")
    add_rows(PlayerTrackableData, player, {utc(2026, 5, 1): {"quests": 2}})
    top_players = reverse("trackable:api-top", args=["testapp.player"]) + "?field=quests&start=2026-05-01&end=2026-05-02"
    assert client.get(top_players).json()["top"] == [{"pk": "ada", "total": 2}]


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        ("series", "field=likes", 400, "'likes' is not a counter field of ArticleTrackableData or ArticleHourlyData or "
         "ArticleTotals; the counter fields are: click_throughs, downloads, impressions, reads."),
        ("series", "", 400, "Name the counter field to read with ?field=."),
        ("series", "field=reads&start=yesterday", 400,
         "start='yesterday' is not an ISO 8601 date or datetime, e.g. 2026-05-01 or 2026-05-01T12:00Z."),
        ("series", "field=reads&start=2026-05-02&end=2026-05-01", 400,
         "The window ends (2026-05-01T00:00:00+00:00) before it starts (2026-05-02T00:00:00+00:00); swap them."),
        ("series", "field=reads&granularity=decade", 400,
         "Unknown granularity 'decade'; choose one of minute, hour, day, week, month, year."),
        ("totals", "", 400, "Name the counter fields to total with ?fields=a,b."),
    ],
)
def test_api_errors_are_json_sentences(client, article, staff, path, params, status, error):
    client.force_login(staff)
    response = client.get(reverse(f"trackable:api-{path}", args=["testapp.article", article.pk]) + "?" + params)
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_api_unknown_parent_and_pk(client, staff):
    client.force_login(staff)
    response = client.get(reverse("trackable:api-top", args=["auth.user"]) + "?field=x")
    assert (response.status_code, response.json()["error"]) == (
        404, "'auth.user' is not a tracked model; use an 'app_label.model' label of a registered parent."
    )
    response = client.get(reverse("trackable:api-series", args=["testapp.video", "not-a-uuid"]) + "?field=plays")
    assert (response.status_code, response.json()["error"]) == (400, "'not-a-uuid' is not a primary key of testapp.video.")


# -- dashboard and admin -----------------------------------------------------------------------------------------


def test_dashboard_is_for_staff_and_shows_totals_and_top_objects(client, db, staff):
    a, b = Article.objects.create(title="Alpha"), Article.objects.create(title="Beta")
    today = bucket_start(datetime.now(UTC), "day")
    add_rows(ArticleTrackableData, a, {today: {"impressions": 2}})
    add_rows(ArticleTrackableData, b, {today: {"impressions": 5}, today - timedelta(days=20): {"impressions": 50}})
    url = reverse("trackable:dashboard")
    assert client.get(url).status_code == 302  # to the admin login
    client.force_login(staff)
    page = client.get(url + "?days=7").content.decode()
    assert 'Impressions: <span class="trackable-total">7</span>' in page
    beta, alpha = (
        page.index(f'<a href="/admin/testapp/article/{b.pk}/change/">Beta</a></td><td>5</td>'),
        page.index(">Alpha</a></td><td>2</td>"),
    )
    assert beta < alpha
    assert 'Impressions: <span class="trackable-total">57</span>' in client.get(url + "?days=30").content.decode()
    assert client.get(url + "?days=0").status_code == 400


@pytest.mark.usefixtures("direct_publish")
def test_dashboard_shows_the_pipeline_status(client, db, staff):
    from trackable.messaging import process_messages, send_increment_message

    article = Article.objects.create(title="Alpha")
    for _ in range(3):
        send_increment_message(None, article, "impressions")
    client.force_login(staff)
    page = client.get(reverse("trackable:dashboard")).content.decode()
    assert '<td class="trackable-queued">3</td>' in page
    assert '<td class="trackable-dead">0</td>' in page
    assert '<td class="trackable-last-fold">never</td>' in page
    process_messages(idle_timeout=0.3)
    page = client.get(reverse("trackable:dashboard")).content.decode()
    assert '<td class="trackable-queued">0</td>' in page
    assert ": 3 events / 3 messages" in page


def test_parent_admin_shows_a_chart_per_counter(client, article, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    today = bucket_start(datetime.now(UTC), "day")
    add_rows(ArticleTrackableData, article, {today: {"impressions": 3}})
    page = client.get(reverse("admin:testapp_article_change", args=[article.pk])).content.decode()
    assert page.count('<svg class="trackable-chart"') == 2  # impressions and reads (rolled up to days)
    assert page.count('class="trackable-point"') == 28
    assert "Impressions of Tides per day" in page and "Reads of Tides per day" in page
    assert client.get(reverse("admin:testapp_article_add")).status_code == 200


def test_data_model_admin_lists_rows_with_bucket_filters(rf, article, django_user_model):
    site = admin.AdminSite(name="trackable-test")
    site.register(ArticleTrackableData, TrackableDataAdmin)
    add_rows(ArticleTrackableData, article, {utc(2026, 5, 1): {"impressions": 3}, utc(2026, 6, 1): {"impressions": 4}})
    model_admin = site._registry[ArticleTrackableData]
    request = rf.get("/", {"collected_during__year": "2026", "collected_during__month": "5"})
    request.user = django_user_model.objects.create_superuser("root", password="pw")
    changelist = model_admin.get_changelist_instance(request)
    assert [(r.impressions, r.collected_during) for r in changelist.get_queryset(request)] == [(3, utc(2026, 5, 1))]
    assert model_admin.date_hierarchy == "collected_during"
    assert model_admin.get_list_display(request) == [
        "content_type",
        "object_id",
        "collected_during",
        "impressions",
        "click_throughs",
    ]
    assert not model_admin.has_change_permission(request) and not model_admin.has_add_permission(request)


def test_chart_svg_is_well_formed_and_escapes_titles():
    from xml.etree import ElementTree

    from trackable.charts import render_chart

    points = [query.Point(utc(2026, 5, d), v) for d, v in ((1, 0), (2, 5), (3, 2))]
    svg = render_chart(points, "day", "Views of <b>&</b>")
    tree = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert tree.find(f"{ns}title").text == "Views of <b>&</b>"
    assert [c.find(f"{ns}title").text for c in tree.iter(f"{ns}circle")] == ["2026-05-01: 0", "2026-05-02: 5", "2026-05-03: 2"]
    assert tree.get("aria-labelledby").endswith("-desc")
    assert tree.find(f"{ns}desc").text == "3 buckets from 2026-05-01 to 2026-05-03; highest 5, total 7."


def test_chart_of_negative_and_empty_series():
    from trackable.charts import render_chart

    svg = render_chart([query.Point(utc(2026, 5, 1), -3), query.Point(utc(2026, 5, 2), 4)], "day", "Score")
    assert re.findall(r'fill="#555">(-?[\d,]+)</text>', svg)[:3] == ["-3", "1", "5"]
    assert re.findall(r'cy="([\d.]+)"', svg) == ["184.0", "37.0"]  # -3 on the bottom line, 4 at 7/8 of the 168px plot
    empty = render_chart([], "day", "Nothing")
    assert 'data-points="0"' in empty and "<circle" not in empty


def test_status_tells_how_fresh_the_numbers_are(client, article, staff):
    from trackable.messaging import send_increment_message

    client.force_login(staff)
    url = reverse("trackable:api-status")
    assert client.get(url).json() == {"last_folded": None, "seconds_since_last_fold": None, "collection_period": 1800}
    send_increment_message(None, article, "impressions")
    before = datetime.now(UTC)
    process_messages()
    status = client.get(url).json()
    assert before <= datetime.fromisoformat(status["last_folded"]) <= datetime.now(UTC)
    assert 0 <= status["seconds_since_last_fold"] < 5
    assert query.last_folded() == datetime.fromisoformat(status["last_folded"])


def test_tracked_link_refuses_an_unsafe_target(article):
    with pytest.raises(
        links.BadLink, match="^Tracking links redirect to http\\(s\\) URLs or site paths, not 'javascript:alert\\(1\\)'.$"
    ):
        render('{% tracked_link article "click_throughs" "javascript:alert(1)" %}', article=article)


@override_settings(TRACKABLE_REGISTER_ADMIN=True)
def test_registered_data_model_admin_page_lists_rows_by_bucket(client, article, django_user_model):
    import importlib

    from django.urls import clear_url_caches

    import tests.urls
    from trackable.admin import register_data_model_admin, unregister_data_model_admin

    def reload_urls():  # admin URLs are computed when the URLconf is imported
        importlib.reload(tests.urls)
        clear_url_caches()

    assert register_data_model_admin(ArticleTrackableData)
    reload_urls()
    try:
        client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
        add_rows(ArticleTrackableData, article, {utc(2026, 5, 1): {"impressions": 3}, utc(2026, 6, 1): {"impressions": 4}})
        url = reverse("admin:testapp_articletrackabledata_changelist")
        page = client.get(url, {"collected_during__year": "2026", "collected_during__month": "6"}).content.decode()
        assert "1 article trackable data" in page
        assert '<td class="field-impressions">4</td>' in page and '<td class="field-impressions">3</td>' not in page
        assert "By collected during" in page  # the bucket filter
        assert (
            '<nav class="toplinks"' in page and 'class="date-back">&lsaquo; 2026</a>' in page
        )  # drill-down (6.1 adds aria-labelledby)
    finally:
        unregister_data_model_admin(ArticleTrackableData)
        reload_urls()


# -- token lifetime and replays ------------------------------------------------------------------------


def test_a_token_expires_after_thirty_days_by_default(client, article):
    with mock.patch("time.time", return_value=time.time() - 31 * 86400):
        old = links.beacon_url(article, "click_throughs")
    with mock.patch("time.time", return_value=time.time() - 29 * 86400):
        recent = links.beacon_url(article, "click_throughs")
    response = client.post(old)
    assert (response.status_code, response.json()["error"]) == (
        400,
        "This tracking link has expired; reload the page that showed it.",
    )
    assert client.post(recent).status_code == 202
    assert clicks(article) == 1


def test_one_client_replaying_a_token_counts_only_up_to_the_limit(client, article):
    url = links.beacon_url(article, "click_throughs")
    statuses = [client.post(url, REMOTE_ADDR="203.0.113.9", HTTP_ORIGIN="https://evil.example").status_code for _ in range(1000)]
    assert statuses.count(202) == 10
    assert statuses.count(429) == 990
    refused = client.post(url, REMOTE_ADDR="203.0.113.9")
    assert refused.json() == {
        "counted": False,
        "error": "This link was already counted as often as one client may count it; it counts again later.",
    }
    assert client.post(url, REMOTE_ADDR="203.0.113.10").status_code == 202  # another client
    go = links.track_url(article, "click_throughs")
    redirects = [client.post(go, REMOTE_ADDR="203.0.113.9") for _ in range(12)]
    assert {(r.status_code, r["Location"]) for r in redirects} == {(303, f"/articles/{article.pk}/")}
    assert clicks(article) == 10 + 1 + 10


@override_settings(TRACKABLE_LINK_REPLAY_LIMIT=2, TRACKABLE_LINK_REPLAY_WINDOW=60)
def test_the_replay_window_ends_and_the_lru_stays_bounded(article):
    from trackable.replay import ReplayGuard

    now = [0.0]
    guard = ReplayGuard(max_entries=3, clock=lambda: now[0])
    request = mock.Mock(META={"REMOTE_ADDR": "198.51.100.1", "HTTP_USER_AGENT": "x"})
    assert [guard.allow("t", request) for _ in range(3)] == [True, True, False]
    now[0] = 60.0
    assert guard.allow("t", request) is True  # a new window
    for i in range(10):
        guard.allow(f"other{i}", request)
    assert len(guard._seen) == 3
    assert guard.refused == 1


# -- hostile API and dashboard arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ("start=2026-02-30", "start='2026-02-30' is not a valid date or time (day is out of range for month); give one like "
         "2026-05-01 or 2026-05-01T12:00Z."),
        ("start=2026-01-01T25:00", "start='2026-01-01T25:00' is not a valid date or time (hour must be in 0..23); give one "
         "like 2026-05-01 or 2026-05-01T12:00Z."),
        ("start=2026-01-01&end=9999-12-31", "end='9999-12-31' is outside the years 0002 to 9998 the API can count; give a "
         "nearer date."),
        ("start=0001-01-01T00:00%2B14:00", "start='0001-01-01T00:00+14:00' is outside the years 0002 to 9998 the API can "
         "count; give a nearer date."),
        ("start=2000-01-01&end=2026-01-01&granularity=hour", "This window holds about 227,928 hour buckets, more than the "
         "100,000 a series may have; ask for a shorter window or a coarser ?granularity=."),
    ],
)
def test_api_refuses_impossible_windows_with_400(client, article, staff, params, error):
    client.force_login(staff)
    response = client.get(series_url(article, field="reads") + "&" + params)
    assert (response.status_code, response.json()) == (400, {"error": error})


@pytest.mark.parametrize("n", ["²", "%C2%B2", "%D9%A3", "0", "1001", "99999999999999999999", "-1", "1e3"])
def test_api_top_n_is_strict_ascii(client, staff, db, n):
    client.force_login(staff)
    response = client.get(reverse("trackable:api-top", args=["testapp.article"]) + f"?field=impressions&n={n}")
    assert response.status_code == 400
    assert response.json()["error"].endswith("is not a whole number from 1 to 1000; ask for e.g. ?n=10.")


@pytest.mark.parametrize(
    ("parent", "pk", "error"),
    [
        (
            "testapp.player",
            "%00",
            "'\\x00' is not a primary key of testapp.player: Player.handle (CharField) cannot hold a NUL character.",
        ),
        (
            "testapp.player",
            "a%0Ab",
            "'a\\nb' is not a primary key of testapp.player: a primary key cannot hold a control character (newline, "
            "tab, ...) here.",
        ),
        (
            "testapp.player",
            "x" * 41,
            f"'{'x' * 41}' is not a primary key of testapp.player: Player.handle (CharField) holds at most 40 characters.",
        ),
        ("testapp.article", "%00", "'\\x00' is not a primary key of testapp.article."),
        ("testapp.article", "a%22;filename=evil.html", "'a\";filename=evil.html' is not a primary key of testapp.article."),
        (
            "testapp.article",
            str(2**70),
            f"'{2**70}' is not a primary key of testapp.article: Article.id (BigAutoField) holds integers from "
            f"-9223372036854775808 to 9223372036854775807.",
        ),
    ],
)
def test_api_refuses_hostile_pks_with_400(client, staff, db, parent, pk, error):
    client.force_login(staff)
    for kind in ("series", "totals"):
        url = reverse(f"trackable:api-{kind}", args=[parent, "PK"]).replace("PK", pk)
        response = client.get(url + "?field=quests&fields=quests&format=csv")
        assert (response.status_code, response.json()) == (400, {"error": error})


def test_csv_cannot_inject_a_header_or_a_formula(client, staff, db):
    client.force_login(staff)
    for handle in ('a";filename=evil.html', "=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx"):
        player = Player.objects.create(handle=handle)
        add_rows(PlayerTrackableData, player, {utc(2026, 5, 1): {"quests": 2}})
    url = reverse("trackable:api-series", args=["testapp.player", "PK"]).replace("PK", "a%22;filename=evil.html")
    response = client.get(url + "?field=quests&start=2026-05-01&end=2026-05-02&format=csv")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="testapp.player-a_filename_evil.html-quests.csv"'
    top = reverse("trackable:api-top", args=["testapp.player"]) + "?field=quests&start=2026-05-01&end=2026-05-02&format=csv"
    rows = client.get(top).content.decode().splitlines()[1:]
    assert sorted(rows) == sorted(
        ['"a"";filename=evil.html",2', "'=HYPERLINK(1),2", "'+1,2", "'-2,2", "'@SUM(A1),2", "'\tx,2"]
    )


@pytest.mark.parametrize("days", ["²", "%C2%B2", "0", "3661", "99999999999999999999"])
def test_dashboard_days_is_strict_ascii(client, staff, days):
    client.force_login(staff)
    response = client.get(reverse("trackable:dashboard") + f"?days={days}")
    assert (response.status_code, response.content) == (400, b"days must be a whole number of days from 1 to 3660.")
