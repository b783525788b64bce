"""Builders for Label Studio payloads, shaped like what a real Label Studio 1.23 sends."""
from __future__ import annotations

from typing import Dict, List, Sequence


def label_config(labels: Sequence[str], from_name: str = "intent", to_name: str = "text", key: str = "text") -> str:
    choices = "".join(f'<Choice value="{label}"/>' for label in labels)
    return (
        f'<View><Text name="{to_name}" value="${key}"/>'
        f'<Choices name="{from_name}" toName="{to_name}" choice="single">{choices}</Choices></View>'
    )


SENTIMENT = label_config(["Positive", "Negative"], from_name="sentiment")

POSITIVE = [
    "I love this product", "what a wonderful day", "great service, thank you", "this is fantastic",
    "absolutely delighted with it", "best purchase ever", "so happy with the result", "excellent quality",
    "really enjoyed it", "brilliant, highly recommend", "amazing experience", "very pleased",
    "superb support team", "lovely and kind staff", "it works perfectly",
]
NEGATIVE = [
    "I hate this product", "what a terrible day", "awful service, never again", "this is horrible",
    "absolutely disgusted with it", "worst purchase ever", "so angry about the result", "poor quality",
    "really disliked it", "dreadful, do not buy", "miserable experience", "very disappointed",
    "rude support team", "nasty and unhelpful staff", "it broke immediately",
]


def version_of(model_version: str) -> str:
    """The backend's version behind a name Label Studio stores (`v0003-...@instance`)."""
    return model_version.split("@")[0]


def task(task_id: int, text, project: int = 1, key: str = "text") -> Dict:
    return {"id": task_id, "data": {key: text}, "meta": {}, "annotations": [], "predictions": [], "project": project}


def annotation_event(
    project: int, config: str, task_id: int, text: str, choice: str, annotation_id: int,
    action: str = "ANNOTATION_CREATED", from_name: str = "sentiment", cancelled: bool = False,
) -> Dict:
    return {
        "action": action,
        "project": {"id": project, "label_config": config, "model_version": "x"},
        "task": {"id": task_id, "data": {"text": text}, "project": project},
        "annotation": {
            "id": annotation_id,
            "task": task_id,
            "was_cancelled": cancelled,
            "result": [] if cancelled else [
                {"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": [choice]}}
            ],
        },
    }


def sentiment_events(project: int, n: int, start_id: int = 1) -> List[Dict]:
    """n alternating Positive/Negative annotation events with distinct texts."""
    events = []
    for i in range(n):
        pool, choice = (POSITIVE, "Positive") if i % 2 == 0 else (NEGATIVE, "Negative")
        text = f"{pool[(i // 2) % len(pool)]} #{i}"
        events.append(annotation_event(project, SENTIMENT, start_id + i, text, choice, start_id + i))
    return events


def intent_project(client, project: int, n_labels: int = 100, pool: int = 300, steps: int = 5, flip: int = 0,
                   classes: int = 10, extra: Sequence[str] = ()):
    """A project of `classes` CLINC150 intents (the shipped copy) with `pool` unlabeled tasks
    asked for predictions and `n_labels` labels sent in `steps` rounds (one version per round).
    The first `flip` labels carry the wrong class; `extra` texts join the pool. Returns (config, {task id: true class},
    {annotation id: class sent})."""
    from baal_backend.data import load_clinc

    data = load_clinc(split="train")
    names = sorted(set(data.labels))[:classes]
    by_class = [[(t, y) for t, y in zip(data.texts, data.labels) if y == name] for name in names]
    rows = [group[k] for k in range(max(map(len, by_class))) for group in by_class if k < len(group)]  # round robin
    rows = rows[: n_labels + pool]
    config = label_config(names)
    truth = {1 + i: y for i, (_, y) in enumerate(rows)}
    unlabeled = [task(1 + n_labels + i, t, project) for i, t in enumerate([t for t, _ in rows[n_labels:]] + list(extra))]
    body = {"project": f"{project}.1", "label_config": config, "tasks": unlabeled}
    assert client.post("/predict", json=body).status_code == 200
    sent = {}
    per_step = -(-n_labels // steps)
    for start in range(0, n_labels, per_step):
        for i in range(start, min(start + per_step, n_labels)):
            text, y = rows[i]
            if i < flip:
                y = names[(names.index(y) + 1) % len(names)]
            sent[1000 + i] = y
            event = annotation_event(project, config, 1 + i, text, y, 1000 + i, from_name="intent")
            assert client.post("/webhook", json=event).status_code == 200
        assert client.engine.jobs.wait_idle(str(project), 300)
    return config, truth, sent


def app_client(model_dir, **env):
    """A Flask test client of the app over `model_dir` (MIN_LABELS 10 unless `env` says), with its
    engine as `.engine`."""
    from _wsgi import create_app
    from baal_backend.settings import Settings

    values = {"MODEL_DIR": str(model_dir), "MIN_LABELS": "10", **{k: str(v) for k, v in env.items()}}
    app = create_app(Settings.from_env(values))
    client = app.test_client()
    client.engine = app.config["ENGINE"]
    return client
