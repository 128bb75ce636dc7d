"""A producer process for the concurrency test: sends increments to a few hot objects."""
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from tests.testapp.models import Article  # noqa: E402
from trackable.messaging import send_increment_message  # noqa: E402

if __name__ == "__main__":
    pks, events = [int(x) for x in sys.argv[1].split(",")], int(sys.argv[2])
    articles = [Article(pk=pk) for pk in pks]  # no query: only the pk is needed
    for i in range(events):
        send_increment_message(
            None, articles[i % len(articles)], "click_throughs" if (i // len(articles)) % 3 == 0 else "impressions"
        )
