"""manage.py demo: migrate SQLite, seed items and two weeks of traffic, fold, then serve with a fold loop."""
import random
import signal
import subprocess
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from shop.models import Item, ItemBrowsers, ItemHourlyData, ItemReferrers, ItemTrackableData
from trackable import messages, transport
from trackable.messaging import process_messages
from trackable.models import PageViews

REFERRERS = ["google.com", "google.com", "news.ycombinator.com", "reddit.com", "duckduckgo.com", "", "", "(internal)"]
CLIENTS = [("Chrome", "desktop"), ("Chrome", "desktop"), ("Firefox", "desktop"), ("Mobile Safari", "mobile"),
           ("Chrome Mobile", "mobile"), ("Safari", "desktop")]
ITEMS = [
    ("Iron sword", 120, "https://en.wikipedia.org/wiki/Sword"),
    ("Healing potion", 15, "https://en.wikipedia.org/wiki/Potion"),
    ("Dragon scale", 900, "https://en.wikipedia.org/wiki/Dragon"),
    ("Map of the north", 40, "https://en.wikipedia.org/wiki/Map"),
]


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = "Run the django-trackable demo on the embedded defaults (SQLite + filesystem://)."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000")
        parser.add_argument("--interval", type=float, default=3.0, help="Seconds between folds.")
        parser.add_argument("--no-server", action="store_true", help="Set up and fold once, then exit.")

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0)
        self._seed()
        result = process_messages(idle_timeout=0.2)
        self.stdout.write(f"Initial fold: {result}")
        for model in (ItemTrackableData, ItemHourlyData, ItemReferrers, ItemBrowsers, PageViews):
            self.stdout.write(f"  {model._meta.verbose_name_plural}: {model.objects.count()} rows")
        if options["no_server"]:
            return
        folder = subprocess.Popen(
            [sys.executable, sys.argv[0], "fold_trackable_messages", "--loop", "--interval", str(options["interval"])]
        )
        # `kill -TERM` of the demo stops the fold loop too: SIGTERM unwinds through the finally below.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        url = f"http://127.0.0.1:{options['port']}/"
        item = Item.objects.order_by("pk").first()
        self.stdout.write(self.style.SUCCESS(f"\nDemo shop: {url}   admin: {url}admin/ (user admin, password admin)"))
        self.stdout.write(f"Dashboard: {url}trackable/dashboard/ (log in to the admin first)")
        self.stdout.write(f"JSON API: {url}trackable/api/shop.item/{item.pk}/series/?field=views (staff only: log in first)")
        self.stdout.write(f"A fold runs every {options['interval']:g}s in process {folder.pid}. Ctrl-C stops both.\n")
        self.stdout.flush()
        try:
            call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)
        finally:
            folder.terminate()
            folder.wait(timeout=30)

    def _seed(self):
        if not get_user_model().objects.filter(username="admin").exists():
            get_user_model().objects.create_superuser("admin", "admin@example.com", "admin")
        if Item.objects.exists():
            return
        items = [Item.objects.create(name=name, price=price, wiki_url=url) for name, price, url in ITEMS]
        # Two weeks of past traffic, published with each event's own time so it lands in past buckets.
        rng = random.Random(7)
        now_ms = int(time.time() * 1000)
        pages = []
        for item in items:
            events = {"itemtrackabledata": [], "itemhourlydata": [], "itemreferrers": [], "itembrowsers": []}
            for _ in range(rng.randint(150, 400)):
                ts = now_ms - rng.randint(0, 14 * 86400 * 1000)
                events["itemtrackabledata"].append(("shop.itemtrackabledata", "shop.item", item.pk, "views", 1, ts))
                events["itemhourlydata"].append(("shop.itemhourlydata", "shop.item", item.pk, "visits", 1, ts))
                referrer = {"referrer": rng.choice(REFERRERS)}
                events["itemreferrers"].append(("shop.itemreferrers", "shop.item", item.pk, "views", 1, ts, {"d": referrer}))
                browser, device = rng.choice(CLIENTS)
                client = {"d": {"browser": browser, "device": device}}
                events["itembrowsers"].append(("shop.itembrowsers", "shop.item", item.pk, "views", 1, ts, client))
                page = ("trackable.pageviews", "trackable.website", 1, "views", 1, ts)
                pages.append((*page, {"d": {"path": f"/items/{item.pk}"}}))
                if rng.random() < 0.3:
                    pages.append((*page, {"d": {"path": "/"}}))
                if rng.random() < 0.1:
                    events["itemtrackabledata"].append(("shop.itemtrackabledata", "shop.item", item.pk, "purchases", 1, ts))
            for name, batch in events.items():
                transport.publish(messages.build(batch), f"shop.{name}")
        transport.publish(messages.build(pages), "trackable.pageviews")
        self.stdout.write(f"Seeded {len(items)} items and two weeks of traffic.")
