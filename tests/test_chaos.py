"""Workers killed with SIGKILL while folding: every event counted, none twice (CI-sized run)."""
import pytest

from tests.chaos.harness import run


@pytest.mark.django_db(transaction=True)
def test_killed_workers_lose_nothing_and_count_nothing_twice(tmp_path):
    # Kills at random moments (before a commit, during one) and between commit and ack, on every broker:
    # filesystem:// keeps a claimed file until its ack, so a kill before the commit loses nothing either.
    with open(tmp_path / "workers.log", "w+") as log:
        report = run(events=3000, kills=5, random_kills=True, seed=7, log=log)
        log.seek(0)
        output = log.read()
    assert report["kills"] == 5, output[-2000:]
    assert (report["events_counted"], report["lost"], report["double"]) == (3000, 0, 0), (report, output[-2000:])
