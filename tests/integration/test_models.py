"""Training modes and base models: fine-tuning with BaalTransformersTrainer, checkpoints used as is."""
import json

import numpy as np
import pytest
import torch

from baal_backend.settings import default_model_path
from baal_backend.training import TrainConfig, train_checkpoint
from tests.helpers import NEGATIVE, POSITIVE, SENTIMENT, label_config, sentiment_events, task
from tests.tiny_models import tiny_distilbert


@pytest.fixture(scope="module")
def sentiment_checkpoint(tmp_path_factory):
    """A local fine-tuned checkpoint whose id2label is ["negative", "positive"] (other order and case)."""
    texts = NEGATIVE + POSITIVE
    y = np.array([0] * len(NEGATIVE) + [1] * len(POSITIVE))
    cfg = TrainConfig(mode="finetune", epochs=8, learning_rate=1e-4, batch_size=8, max_length=32)
    clf = train_checkpoint(default_model_path(), ["negative", "positive"], texts, y, cfg)
    path = tmp_path_factory.mktemp("checkpoint")
    clf.model.save_pretrained(path)
    clf.tokenizer.save_pretrained(path)
    return path


def test_finetuned_checkpoint_predicts_before_any_annotation(make_app, sentiment_checkpoint):
    config = json.loads((sentiment_checkpoint / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    client = make_app(BASELINE_MODEL_NAME=str(sentiment_checkpoint))
    texts = POSITIVE[:5] + NEGATIVE[:5]
    resp = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT, "tasks": [task(i, t) for i, t in enumerate(texts)]})
    got = [r["result"][0]["value"]["choices"][0] for r in resp.json["results"]]
    assert resp.json["results"][0]["model_version"].startswith("v0000@")
    assert got == ["Positive"] * 5 + ["Negative"] * 5


def test_finetune_mode_on_a_finetuned_checkpoint_keeps_its_classifier(make_app, sentiment_checkpoint):
    """Its own classifier knows the classes: fine-tune mode trains it as is, from its trained rows."""
    from baal_backend.model import TransformerClassifier

    client = make_app(BASELINE_MODEL_NAME=str(sentiment_checkpoint), TRAIN_MODE="finetune", EVAL_FRACTION=0,
                      MAX_LENGTH=32)
    for event in sentiment_events(1, 12):
        client.post("/webhook", json=event)
    assert client.engine.jobs.wait_idle("1", 300)
    version, clf = client.engine.classifier("1")
    assert version != "v0000" and isinstance(clf, TransformerClassifier) and clf.labels == ("Positive", "Negative")
    probs = clf.predict_proba(["I love it", "I hate it"], 20).mean(-1)
    assert probs[0].argmax() == 0 and probs[1].argmax() == 1
    # the version on disk is the kind earlier fine-tune releases wrote too: a fresh process serves it
    restarted = make_app(model_dir=client.engine.settings.model_dir, BASELINE_MODEL_NAME=str(sentiment_checkpoint),
                         TRAIN_MODE="finetune", MAX_LENGTH=32)
    again, loaded = restarted.engine.classifier("1")
    assert again == version and isinstance(loaded, TransformerClassifier)
    assert np.allclose(loaded.predict_proba(["I love it"], 20).mean(-1), clf.predict_proba(["I love it"], 20).mean(-1),
                       atol=0.05)


def test_finetune_mode_trains_with_baal_trainer_and_serves(make_app):
    client = make_app(TRAIN_MODE="finetune", EPOCHS=2, MAX_LENGTH=32, EVAL_FRACTION=0, BATCH_SIZE=8)
    config = label_config(["Positive", "Negative", "Mixed"], from_name="sentiment")  # 3 outputs, not the default 2
    for event in sentiment_events(1, 12):
        event["project"]["label_config"] = config
        client.post("/webhook", json=event)
    assert client.engine.jobs.wait_idle("1", 300)
    body = client.get("/versions?project=1").json
    assert body["details"][-1]["mode"] == "finetune" and body["details"][-1]["n_labels"] == 12
    path = client.engine.project("1").registry.path(body["current"])
    assert (path / "body" / "config.json").exists() and (path / "head.pt").exists()
    saved = json.loads((path / "classifier.json").read_text())
    assert saved["kind"] == "finetuned-body"
    assert saved["labels"] == ["Positive", "Negative", "Mixed"]  # the label config's order, always
    # the body was fine-tuned: its weights differ from the base encoder's
    _, clf = client.engine.classifier("1")
    assert clf.encoder is not client.engine.encoder and clf.encoder.identity != client.engine.encoder.identity
    # a fresh process loads the fine-tuned version from disk and serves the same probabilities
    restarted = make_app(model_dir=client.engine.settings.model_dir, TRAIN_MODE="finetune", MAX_LENGTH=32)
    resp = restarted.post("/predict", json={"tasks": [task(1, "I love it"), task(2, ""), task(3, "I hate it")],
                                            "project": "1.1"})
    results = resp.json["results"]
    assert results[0]["model_version"] == body["studio_version"] and results[1]["result"] == []
    assert [results[i]["result"][0]["value"]["choices"][0] for i in (0, 2)] == ["Positive", "Negative"]
    assert 0 <= results[0]["score"] <= 1
    _, reloaded = restarted.engine.classifier("1")
    texts = ["I love it", "I hate it", "it is fine I guess"]
    assert np.allclose(clf.predict_proba(texts, 50).mean(-1), reloaded.predict_proba(texts, 50).mean(-1), atol=0.1)
    assert np.allclose(clf.encoder.embed(texts), reloaded.encoder.embed(texts), atol=1e-5)


def test_label_map_never_depends_on_annotated_classes(make_app):
    """Only 2 of 3 classes annotated: the version still has all 3 outputs in config order."""
    config = label_config(["neutral", "Positive", "Negative"], from_name="sentiment")
    client = make_app()
    for ev in sentiment_events(1, 12):
        ev["project"]["label_config"] = config
        client.post("/webhook", json=ev)
    assert client.engine.jobs.wait_idle("1", 60)
    version = client.engine.current_version("1")
    meta = client.engine.project("1").registry.meta(version)
    assert meta["labels"] == ["neutral", "Positive", "Negative"]
    assert meta["label_counts"] == {"neutral": 0, "Positive": 6, "Negative": 6}
    resp = client.post("/predict", json={"project": "1.1", "label_config": config,
                                         "tasks": [task(1, "I love this product #99"), task(2, "I hate this product #98")]})
    assert [r["result"][0]["value"]["choices"][0] for r in resp.json["results"]] == ["Positive", "Negative"]


def test_the_design_cards_configuration_on_distilbert(make_app, tmp_path):
    """TRAIN_MODE=finetune + HEURISTIC=bald on a DistilBERT body (a tiny random one, built offline):
    BaalTransformersTrainer trains it under baal's dropout-patched head, and the served version's
    MC draws disagree, so BALD ranks."""
    from baal.bayesian.dropout import Dropout as MCDropout

    from baal_backend.model import TunedClassifier

    events = sentiment_events(1, 16)
    base = tiny_distilbert(tmp_path / "distilbert", [e["task"]["data"]["text"] for e in events] + ["I love it", "awful"])
    client = make_app(BASELINE_MODEL_NAME=str(base), TRAIN_MODE="finetune", HEURISTIC="bald", EPOCHS=3,
                      LEARNING_RATE=1e-3, BATCH_SIZE=8, MAX_LENGTH=32, MIN_LABELS=12)
    for event in events:
        assert client.post("/webhook", json=event).status_code == 200
    assert client.engine.jobs.wait_idle("1", 300)
    body = client.get("/versions?project=1").json
    assert body["details"], body["last_run"]
    assert body["details"][-1]["mode"] == "finetune" and body["details"][-1]["n_labels"] == 16
    version, clf = client.engine.classifier("1")
    assert isinstance(clf, TunedClassifier) and type(clf.encoder.model).__name__ == "DistilBertModel"
    assert isinstance(clf.head.out[0], MCDropout)  # the head's dropout, patched by baal
    assert not any(isinstance(m, MCDropout) for m in clf.encoder.model.modules())  # the body runs once
    probs = clf.predict_proba(["I love it", "awful", "so happy with the result"], 20)
    assert probs.shape == (3, 2, 20) and probs.std(-1).max() > 0  # the draws disagree
    resp = client.post("/predict", json={"project": "1.1", "tasks": [task(1, "I love it"), task(2, "awful")]})
    results = resp.json["results"]
    assert [r["model_version"] for r in results] == [f"{version}@{client.engine.instance}"] * 2
    assert all(r["result"][0]["value"]["choices"][0] in ("Positive", "Negative") for r in results)


def test_finetuning_keeps_a_share_for_classes_nobody_labeled(tmp_path):
    """As in head mode, each class's prototype is one training example: with labels of class 0
    only, the loss still pulls class 2 (named, unlabeled) up rather than training it away."""
    from baal_backend.hf import load_base_model, load_tokenizer
    from baal_backend.model import MCHead
    from baal_backend.prior import LabelPrior
    from baal_backend.training import SentenceModel
    from tests.tiny_models import tiny_bert

    base = str(tiny_bert(tmp_path / "bert"))
    rng = np.random.default_rng(0)
    prototypes = rng.normal(size=(3, 32)).astype(np.float32)
    prior = LabelPrior(prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True), 10.0)
    batch = load_tokenizer(base)(["a text", "another text"], padding=True, return_tensors="pt")
    kept = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        head = MCHead(32, 3)
        with torch.no_grad():
            head.out[1].weight.zero_()
            head.out[1].bias.zero_()
        model = SentenceModel(load_base_model(base), head, prior, anchor_weight=weight)
        opt = torch.optim.AdamW(model.head.parameters(), lr=1e-2)
        for _ in range(200):
            loss = model(**batch, labels=torch.tensor([0, 0])).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        between = prior.prototypes[2] + prior.prototypes[0]  # a text as close to class 2's name as to class 0's
        with torch.no_grad():
            kept[weight] = float(torch.softmax(model.logits(torch.from_numpy(between / np.linalg.norm(between))[None]), -1)[0, 2])
    assert kept[0.0] < 0.1 and kept[1.0] > 0.3, kept  # trained away without its prototype, kept with it
