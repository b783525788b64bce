"""PROJECT_DELETED moves a project into the trash, from where `python -m baal_backend restore` brings
it back; TRASH_DAYS later it is purged."""
import json
import time

from baal_backend.__main__ import main
from baal_backend.labels import LabelStore
from baal_backend.project import Trash
from tests.helpers import sentiment_events, task

DELETED = {"action": "PROJECT_DELETED", "project": {"id": 1}}


def _age(entry_path, days: float) -> None:
    """Pretend the entry was made `days` ago."""
    info = entry_path / Trash.INFO
    info.write_text(json.dumps({**json.loads(info.read_text()), "deleted_at": time.time() - days * 86400}))


def _predicted_version(client) -> str:
    resp = client.post("/predict", json={"project": "1.1", "tasks": [task(1, "I love it")]})
    assert resp.status_code == 200
    return resp.json["results"][0]["model_version"]


def test_a_deleted_project_is_restored_and_serves_the_same_version(make_app, capsys):
    client = make_app(MIN_LABELS=10)
    for event in sentiment_events(1, 12):
        assert client.post("/webhook", json=event).status_code == 200
    assert client.engine.jobs.wait_idle("1", 120)
    trained = client.engine.current_version("1")
    assert trained != "v0000"
    served = _predicted_version(client)
    model_dir = client.engine.settings.model_dir

    resp = client.post("/webhook", json=DELETED)
    assert resp.json["status"] == "ok" and not (model_dir / "projects" / "1").exists()
    assert client.get("/versions?project=1").json["versions"] == []
    [entry] = Trash(model_dir, 7).entries()
    assert entry.project == "1" and LabelStore(entry.files / "labels.sqlite3").count() == 12  # nothing lost

    assert main(["trash", "--model-dir", str(model_dir)]) == 0
    assert capsys.readouterr().out.startswith("project 1\tdeleted ")
    assert main(["restore", "--project", "1", "--model-dir", str(model_dir)]) == 0
    assert Trash(model_dir, 7).entries() == []
    body = client.get("/versions?project=1").json  # the running server serves it again, as it was
    assert body["current"] == trained and body["labels"] == 12
    assert _predicted_version(client) == served

    assert main(["restore", "--project", "1", "--model-dir", str(model_dir)]) == 1
    assert "project 1 is not in the trash" in capsys.readouterr().err


def test_restore_never_overwrites_newer_state(make_app, capsys):
    client = make_app()
    client.post("/webhook", json=sentiment_events(1, 1)[0])
    client.post("/webhook", json=DELETED)
    client.post("/webhook", json=sentiment_events(1, 1, start_id=5)[0])  # the id has state again
    model_dir = client.engine.settings.model_dir
    assert main(["restore", "--project", "1", "--model-dir", str(model_dir)]) == 1
    assert "project 1 has state again" in capsys.readouterr().err
    assert len(Trash(model_dir, 7).entries()) == 1
    assert client.engine.jobs.wait_idle("1", 60)


def test_the_trash_is_purged_after_trash_days(make_app):
    client = make_app(TRASH_DAYS=7)
    model_dir = client.engine.settings.model_dir
    for project in (1, 2, 3):
        client.post("/webhook", json=sentiment_events(project, 1)[0])
    client.post("/webhook", json=DELETED)
    [first] = Trash(model_dir, 7).entries()
    _age(first.path, 8)
    client.post("/webhook", json={**DELETED, "project": {"id": 2}})  # trashing purges what is older than 7 days
    assert [e.project for e in Trash(model_dir, 7).entries()] == ["2"]
    client.post("/webhook", json={**DELETED, "project": {"id": 3}})
    second, third = Trash(model_dir, 7).entries()[::-1]
    _age(second.path, 7.1)
    _age(third.path, 6.9)
    make_app(model_dir=model_dir, TRASH_DAYS=7)  # and so does a start
    assert [e.project for e in Trash(model_dir, 7).entries()] == ["3"]
    assert sorted(p.name for p in (model_dir / "trash").iterdir()) == [third.path.name]
    for project in ("1", "2", "3"):
        assert client.engine.jobs.wait_idle(project, 60)


def test_trash_days_0_purges_at_once(make_app):
    client = make_app(TRASH_DAYS=0)
    client.post("/webhook", json=sentiment_events(1, 1)[0])
    assert client.post("/webhook", json=DELETED).json["status"] == "ok"
    model_dir = client.engine.settings.model_dir
    assert not (model_dir / "projects" / "1").exists() and list((model_dir / "trash").iterdir()) == []
    assert client.engine.jobs.wait_idle("1", 60)


def test_without_an_answer_from_label_studio_nothing_is_deleted(make_app):
    """With credentials, a deletion needs Label Studio's 404: unreachable, it is refused."""
    from tests.processes import free_port

    client = make_app(LABEL_STUDIO_URL=f"http://127.0.0.1:{free_port()}", LABEL_STUDIO_API_KEY="k" * 40)
    client.post("/setup", json={"project": "1.1", "schema": sentiment_events(1, 1)[0]["project"]["label_config"]})
    body = client.post("/webhook", json=DELETED).json
    assert body["status"] == "refused" and "Label Studio cannot confirm that project 1 is gone" in body["reason"]
    assert (client.engine.settings.model_dir / "projects" / "1").is_dir()
