"""Loaded versions are bounded (MAX_LOADED_MODELS): an evicted one reloads from disk, pins stay right;
/predict runs every question's classifier on a chunk of texts at a time."""
import numpy as np
import torch

from baal_backend import predictor
from baal_backend.model import HeadClassifier, MCHead
from baal_backend.multilabel import MultiLabelClassifier
from baal_backend.question_models import QuestionModels
from baal_backend.schema import parse_label_config

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


class _Counted:
    """A real classifier that records how many texts each `predict_proba` call got."""

    batches: list

    def predict_proba(self, texts, draws):
        self.batches.append(len(texts))
        return super().predict_proba(texts, draws)


class _CountedHead(_Counted, HeadClassifier):
    pass


class _CountedMultiLabel(_Counted, MultiLabelClassifier):
    pass


QUESTIONS = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="topic" toName="text" choice="multiple"><Choice value="billing"/><Choice value="travel"/>'
    '<Choice value="card"/></Choices>'
    '<Choices name="mood" toName="text"><Choice value="happy"/><Choice value="unhappy"/></Choices>'
    '<Choices name="urgent" toName="text" choice="multiple" visibleWhen="choice-selected" whenTagName="mood" '
    'whenChoiceValue="unhappy"><Choice value="yes"/></Choices></View>'
)


def test_several_questions_predict_in_chunks_with_the_same_answers(make_app, monkeypatch):
    """Was: every question's classifier ran on all the texts at once (memory O(texts x labels x
    draws) per question). Heads without dropout: the draws are deterministic, so chunked and whole
    calls must agree."""
    engine = make_app().engine
    encoder = engine.models.encoder
    torch.manual_seed(0)
    members = [
        ("topic", _CountedMultiLabel(encoder, MCHead(encoder.dim, 3, dropout=0.0), ("billing", "travel", "card"),
                                     [0.5, 0.5, 0.5], cardinality=1.3)),
        ("mood", _CountedHead(encoder, MCHead(encoder.dim, 2, dropout=0.0), ("happy", "unhappy"))),
        ("urgent", _CountedMultiLabel(encoder, MCHead(encoder.dim, 1, dropout=0.0), ("yes",), [0.5])),
    ]
    for _, clf in members:
        clf.batches = []
    models = QuestionModels(members)
    name = engine.project("1").registry.publish(models.save, {})
    engine.served.serve(engine.project("1"), name, models)  # the project has state now: the table keeps it
    schema = parse_label_config(QUESTIONS)
    texts = [f"{w} {k}" for k, w in enumerate(TEXTS * 3)][:11]

    def answers():
        preds = engine.predict("1", schema, texts)
        return preds.scores, [(q.from_name, q.choices, q.confidence, q.shown, q.scores) for q in preds.questions]

    monkeypatch.setattr(predictor, "PREDICT_CHUNK", 4)
    scores, chunked = answers()
    assert all(clf.batches == [4, 4, 3] for _, clf in members)  # never more than a chunk at once
    monkeypatch.setattr(predictor, "PREDICT_CHUNK", 2048)
    whole_scores, whole = answers()
    assert members[0][1].batches[-1] == 11
    assert np.allclose(scores, whole_scores, atol=1e-6) and len(scores) == len(texts)
    assert [q[0] for q in chunked] == ["topic", "mood", "urgent"]
    for got, want in zip(chunked, whole):
        assert got[1] == want[1] and np.array_equal(got[3], want[3])
        assert np.allclose(got[2], want[2], atol=1e-6) and np.allclose(got[4], want[4], atol=1e-6)
