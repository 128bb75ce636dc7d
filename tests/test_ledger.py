"""The ledger claims each message id once, whatever the database."""
import pytest
from django.db import transaction
from django.utils import timezone

from trackable.ledger import claim_ids
from trackable.models import FoldedMessage

pytestmark = [pytest.mark.django_db, pytest.mark.no_broker]


def test_ids_are_claimed_once_and_copies_in_one_call_count_once():
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    now = timezone.now()
    with transaction.atomic():
        assert claim_ids("default", [b, a, b], now) == {a, b}
    with transaction.atomic():
        assert claim_ids("default", [c, a], now) == {c}
    assert claim_ids("default", [], now) == set()
    assert sorted(FoldedMessage.objects.values_list("id", flat=True)) == [a, b, c]
