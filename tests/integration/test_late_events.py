"""Webhooks out of order, through the HTTP app: Label Studio's `updated_at` decides, and a deleted
annotation stays deleted."""
from typing import Dict, Optional

from tests.helpers import SENTIMENT, annotation_event


def _event(annotation_id: int, choice: str, updated_at: Optional[str], action: str = "ANNOTATION_UPDATED",
           cancelled: bool = False) -> Dict:
    event = annotation_event(1, SENTIMENT, 10 + annotation_id, f"text {annotation_id}", choice, annotation_id,
                             action=action, cancelled=cancelled)
    event["annotation"]["updated_at"] = updated_at  # as Label Studio 1.23 dates it
    return event


def _stored(client, annotation_id: int) -> Optional[str]:
    label = client.engine.project("1").store.get(annotation_id)
    return label.label if label else None


def test_an_older_update_arriving_late_never_overwrites_the_newer(make_app):
    client = make_app()
    assert client.post("/webhook", json=_event(1, "Positive", "2025-01-01T12:00:00.000001Z",
                                               action="ANNOTATION_CREATED")).status_code == 200
    assert client.post("/webhook", json=_event(1, "Negative", "2025-01-01T12:05:00.000002Z")).status_code == 200
    late = client.post("/webhook", json=_event(1, "Positive", "2025-01-01T12:05:00.000001Z"))
    assert late.status_code == 200 and late.json["status"] == "ok" and "training" not in late.json
    assert _stored(client, 1) == "Negative"
    # a late cancellation (older than the stored edit) removes nothing either
    client.post("/webhook", json=_event(1, "Negative", "2025-01-01T12:01:00Z", cancelled=True))
    assert _stored(client, 1) == "Negative"
    assert client.engine.jobs.wait_idle("1", 60)


def test_a_created_event_after_the_deletion_leaves_it_deleted(make_app):
    client = make_app()
    client.post("/webhook", json=_event(1, "Positive", "2025-01-01T12:00:00Z", action="ANNOTATION_CREATED"))
    client.post("/webhook", json=_event(2, "Negative", "2025-01-01T12:00:00Z", action="ANNOTATION_CREATED"))
    deleted = {"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": 1}]}
    assert client.post("/webhook", json=deleted).status_code == 200
    for action, at in (("ANNOTATION_CREATED", "2025-01-01T12:00:00Z"), ("ANNOTATION_UPDATED", "2025-01-02T00:00:00Z")):
        assert client.post("/webhook", json=_event(1, "Negative", at, action=action)).status_code == 200
    assert _stored(client, 1) is None and _stored(client, 2) == "Negative"
    assert client.get("/versions?project=1").json["labels"] == 1
    assert client.engine.jobs.wait_idle("1", 60)


def test_an_unreadable_updated_at_is_named(make_app):
    resp = make_app().post("/webhook", json=_event(1, "Positive", "yesterday", action="ANNOTATION_CREATED"))
    assert resp.status_code == 400 and "annotation 1's updated_at must be an ISO-8601 time" in resp.json["error"]
