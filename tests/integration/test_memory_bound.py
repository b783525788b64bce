"""Loaded versions are bounded (MAX_LOADED_MODELS): an evicted one reloads from disk, pins stay right."""
from tests.helpers import SENTIMENT, sentiment_events, task, version_of

TEXTS = ["I love it, wonderful", "awful, I hate it", "so happy and delighted", "terrible and horrible"]
EXPECTED = ["Positive", "Negative", "Positive", "Negative"]


def _predict(client, project):
    tasks = [task(i, text, project=project) for i, text in enumerate(TEXTS)]
    resp = client.post("/predict", json={"tasks": tasks, "project": f"{project}.1", "label_config": SENTIMENT})
    assert resp.status_code == 200, resp.json
    return [r["result"][0]["value"]["choices"][0] for r in resp.json["results"]], resp.json["model_version"]


def test_only_max_loaded_models_stay_loaded_and_an_evicted_version_reloads(make_app):
    """Was: every project's version stayed loaded forever (three here, whatever the setting)."""
    client = make_app(MAX_LOADED_MODELS=2)
    engine = client.engine
    for project in (1, 2, 3):
        for event in sentiment_events(project, 12):
            assert client.post("/webhook", json=event).status_code == 200
        assert engine.jobs.wait_idle(str(project), 120)

    def loaded():
        return {pid for pid in "123" if engine.project(pid).loaded is not None}

    def pins_match():  # a loaded version is pinned once, an unloaded project pins nothing
        for pid in "123":
            project = engine.project(pid)
            assert dict(project.registry._pinned) == ({project.loaded[0]: 1} if project.loaded else {})

    assert loaded() == {"2", "3"}  # trained last
    pins_match()
    for project in (1, 2, 3, 1):  # 1 reloads from disk (2 goes), 2 reloads (3 goes), ...
        labels, version = _predict(client, project)
        assert labels == EXPECTED and version_of(version) == engine.current_version(str(project)) != "v0000"
        assert len(loaded()) == 2 and str(project) in loaded()
        pins_match()
    assert loaded() == {"3", "1"}
