"""A project id Label Studio reuses (a reinstall, a second Label Studio) is another project: it
never inherits the stored one's labels and versions, which go to the trash; state from before
identities keeps everything and adopts the first creation time it is given."""
from datetime import datetime, timezone

from baal_backend.project import Trash
from tests.helpers import SENTIMENT, sentiment_events


def _webhooks(client, events, created=None):
    for event in events:
        if created is not None:
            event["project"]["created_at"] = datetime.fromtimestamp(created, timezone.utc).isoformat()
        assert client.post("/webhook", json=event).status_code == 200
    assert client.engine.jobs.wait_idle("1", 300)


def test_a_reused_project_id_starts_clean_and_the_old_one_is_kept(make_app):
    client = make_app()
    model_dir = client.engine.settings.model_dir
    _webhooks(client, sentiment_events(1, 12))  # state from before identities: no creation time known
    version = client.engine.current_version("1")
    # the same Label Studio names the project as ever: everything kept, the time adopted
    assert client.post("/setup", json={"project": "1.1700000000", "schema": SENTIMENT}).status_code == 200
    _webhooks(client, sentiment_events(1, 2, start_id=100), created=1700000000)
    body = client.get("/versions?project=1").json
    assert body["labels"] == 14 and version in body["versions"]
    assert (model_dir / "projects" / "1" / "identity.json").exists()

    # a reinstalled Label Studio makes a new project 1, and reuses annotation ids 1, 2, ...
    assert client.post("/setup", json={"project": "1.1800000000", "schema": SENTIMENT}).status_code == 200
    body = client.get("/versions?project=1").json
    assert body["labels"] == 0 and body["versions"] == [], body
    [old] = Trash(model_dir, 7).entries()
    assert old.project == "1"
    _webhooks(client, sentiment_events(1, 3), created=1800000000)
    assert client.get("/versions?project=1").json["labels"] == 3  # its own labels only
    from baal_backend.labels import LabelStore
    kept = LabelStore(old.files / "labels.sqlite3")
    assert kept.count() == 14  # nothing of the old project was overwritten
    kept.close()


def test_a_webhook_cannot_name_another_project(make_app):
    """A webhook's created_at is never taken (the webhook token is readable by the organisation):
    a forged one neither trashes nor poisons the stored identity."""
    client = make_app()
    assert client.post("/setup", json={"project": "1.1700000000", "schema": SENTIMENT}).status_code == 200
    _webhooks(client, sentiment_events(1, 12))
    assert client.post("/setup", json={"project": "1.1700000000", "schema": SENTIMENT}).status_code == 200
    forged = {"action": "SOMETHING", "project": {"id": 1, "created_at": "2001-01-01T00:00:00Z"}}
    assert client.post("/webhook", json=forged).status_code == 200
    assert client.post("/setup", json={"project": "1.1700000000", "schema": SENTIMENT}).status_code == 200
    assert client.get("/versions?project=1").json["labels"] == 12
    assert Trash(client.engine.settings.model_dir, 7).entries() == []


def test_with_credentials_only_label_studio_says_which_project_it_is(make_app, tmp_path):
    """A stamp Label Studio does not confirm is not taken; Label Studio's own stamp is."""
    from baal_backend.studio_client import LabelStudioClient
    from baal_backend.studio_link import StudioLink
    from tests.fake_studio import FakeStudio

    studio = FakeStudio(1, n_tasks=5)  # created at 1700000000
    try:
        client = make_app()
        link = StudioLink(client.engine, LabelStudioClient(studio.url, "token"), client.engine.settings)
        client.engine.events.subscribe(link)
        assert client.post("/setup", json={"project": "1.1700000000", "schema": SENTIMENT}).status_code == 200
        _webhooks(client, sentiment_events(1, 12))
        assert client.post("/setup", json={"project": "1.1700000000", "schema": SENTIMENT}).status_code == 200
        # a request with another stamp that Label Studio does not confirm: nothing moves
        assert client.post("/setup", json={"project": "1.1800000000", "schema": SENTIMENT}).status_code == 200
        assert client.get("/versions?project=1").json["labels"] == 12
        # Label Studio itself now has a new project 1: the link's check moves the old one aside
        studio.settings["created_at"] = "2027-01-15T08:00:00Z"
        assert not link.same_project("1")
        assert [e.project for e in Trash(client.engine.settings.model_dir, 7).entries()] == ["1"]
    finally:
        studio.stop()
