"""Where missed webhooks stand: `/health` says whether they are recovered, and the reconciler
runs only in a process that serves, and stops with it."""
import threading

from tests.fake_studio import FakeStudio


def _reconcilers():
    return [t for t in threading.enumerate() if t.name == "reconcile" and t.is_alive()]


def test_health_says_missed_webhooks_are_not_recovered_without_credentials(make_app):
    body = make_app().get("/health").json
    assert body["missed_webhooks"].startswith("not recovered") and "LABEL_STUDIO_API_KEY" in body["missed_webhooks"]


def test_the_reconciler_runs_while_serving_and_stops_with_the_process(make_app):
    studio = FakeStudio(1)
    try:
        client = make_app(LABEL_STUDIO_URL=studio.url, LABEL_STUDIO_API_KEY="token", RECONCILE_SECONDS="7")
        assert client.get("/health").json["missed_webhooks"].startswith("recovered") and "every 7 s" in \
            client.get("/health").json["missed_webhooks"]
        assert not _reconcilers()  # building the app (perhaps before a fork) starts nothing
        client.engine.resume()  # what the serving process does at start-up
        client.engine.resume()  # one reconciler per process, however often
        assert len(_reconcilers()) == 1
        client.engine.shutdown(5)
        assert not _reconcilers()
    finally:
        studio.stop()
