"""The registry: admin-style register/unregister with errors that name the fix."""
import pytest
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import trackable
from tests.testapp.models import (
    Article,
    ArticleHourlyData,
    ArticleTrackableData,
    Gadget,
    GadgetData,
    GadgetHourlyData,
    NoCounterData,
    OddGranularityData,
    Player,
    PlayerTrackableData,
    Video,
    VideoTrackableData,
)
from trackable.exceptions import AlreadyRegistered, AmbiguousField, NotRegistered, UnknownField
from trackable.sites import TrackableSite

pytestmark = pytest.mark.no_broker


@pytest.fixture
def site():
    return TrackableSite()


def test_register_one_model(site):
    site.register(Gadget, GadgetData)
    assert site.is_registered(Gadget)
    assert site.is_registered(Gadget, GadgetData)
    assert site.get_data_models(Gadget) == [GadgetData]
    assert site.data_models() == [GadgetData]
    assert site.parents_of(GadgetData) == [Gadget]


def test_register_several_models_with_one_data_model(site):
    site.register([Gadget, Article], GadgetData)
    assert site.parents_of(GadgetData) == [Gadget, Article]
    assert site.route(Article, "hits").parent_label == "testapp.article"
    assert site.route(Gadget, "hits").data_label == "testapp.gadgetdata"


def test_several_data_models_per_parent(site):
    site.register(Article, ArticleTrackableData)
    site.register(Article, ArticleHourlyData)
    assert site.get_data_models(Article) == [ArticleTrackableData, ArticleHourlyData]
    assert site.route(Article, "reads").data_model is ArticleHourlyData
    assert site.route(Article, "impressions").data_model is ArticleTrackableData


def test_already_registered_is_raised(site):
    site.register(Gadget, GadgetData)
    with pytest.raises(AlreadyRegistered) as err:
        site.register(Gadget, GadgetData)
    assert str(err.value) == "Gadget is already registered with GadgetData."


def test_unregister(site):
    site.register([Gadget, Article], GadgetData)
    site.unregister(Gadget)
    assert not site.is_registered(Gadget)
    assert site.is_registered(Article, GadgetData)
    with pytest.raises(NotRegistered) as err:
        site.unregister(Gadget)
    assert str(err.value) == "The model Gadget is not registered."
    with pytest.raises(NotRegistered) as err:
        site.unregister(Article, ArticleTrackableData)
    assert str(err.value) == "The model Article is not registered with ArticleTrackableData."


def test_abstract_data_model_refused(site):
    with pytest.raises(ImproperlyConfigured) as err:
        site.register(Gadget, trackable.TrackableTimeSeriesData)
    assert str(err.value) == (
        "The data model TrackableTimeSeriesData is abstract; register a concrete subclass of it."
    )


def test_non_trackable_data_model_refused(site):
    with pytest.raises(ImproperlyConfigured) as err:
        site.register(Gadget, Article)
    assert str(err.value) == (
        "'Article' is not a data model: data models subclass trackable.TrackableData or "
        "trackable.TrackableTimeSeriesData."
    )


def test_data_model_without_counters_refused(site):
    with pytest.raises(ImproperlyConfigured, match="The data model NoCounterData has no counter field; add one"):
        site.register(Gadget, NoCounterData)


def test_unknown_granularity_refused(site):
    with pytest.raises(ImproperlyConfigured) as err:
        site.register(Gadget, OddGranularityData)
    assert str(err.value) == (
        "OddGranularityData.granularity is 'fortnight'; choose one of minute, hour, day, week, month, year."
    )


def test_uuid_parent_needs_uuid_object_id(site):
    with pytest.raises(ImproperlyConfigured) as err:
        site.register(Video, GadgetData)
    assert str(err.value) == (
        "Video has a UUIDField primary key but GadgetData.object_id is a BigIntegerField; "
        "declare object_id = models.UUIDField() on GadgetData."
    )
    site.register(Video, VideoTrackableData)


def test_string_parent_needs_long_enough_char_object_id(site):
    with pytest.raises(ImproperlyConfigured) as err:
        site.register(Player, GadgetData)
    assert str(err.value) == (
        "Player has a CharField primary key but GadgetData.object_id is a BigIntegerField; "
        "declare object_id = models.CharField(max_length=40) on GadgetData."
    )
    site.register(Player, PlayerTrackableData)


def test_route_errors_name_the_fix(site):
    site.register(Article, ArticleTrackableData)
    with pytest.raises(UnknownField) as err:
        site.route(Article, "clicks")
    assert str(err.value) == (
        "'clicks' is not a counter field of ArticleTrackableData; the counter fields are: click_throughs, impressions."
    )
    with pytest.raises(NotRegistered) as err:
        site.route(Gadget, "hits")
    assert str(err.value) == (
        "The model Gadget is not registered with trackable; call "
        "trackable.site.register(Gadget, <data model>) in a trackables.py module."
    )


def test_ambiguous_field_needs_data_model(site):
    site.register(Article, GadgetData)
    site.register(Article, GadgetHourlyData)
    with pytest.raises(AmbiguousField) as err:
        site.route(Article, "hits")
    assert str(err.value) == (
        "'hits' is a counter field of several data models of Article (GadgetData, GadgetHourlyData); "
        "pass data_model= to choose one."
    )
    assert site.route(Article, "hits", GadgetData).data_model is GadgetData


def test_default_site_autodiscovered_test_app():
    assert trackable.site.is_registered(Article, ArticleTrackableData)
    assert trackable.site.is_registered(Video, VideoTrackableData)


def test_admin_registered_only_when_debug(site):
    assert not admin.site.is_registered(GadgetData)
    site.register(Gadget, GadgetData)
    assert not admin.site.is_registered(GadgetData)  # DEBUG is False in the tests
    site.unregister(Gadget)
    with override_settings(DEBUG=True):
        site.register(Gadget, GadgetData)
        try:
            assert admin.site.is_registered(GadgetData)
        finally:
            site.unregister(Gadget)
    assert not admin.site.is_registered(GadgetData)
    with override_settings(TRACKABLE_REGISTER_ADMIN=True):
        site.register(Gadget, GadgetData, list_per_page=7)
        try:
            assert admin.site._registry[GadgetData].list_per_page == 7
        finally:
            site.unregister(Gadget)
