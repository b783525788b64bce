import time

from baal_backend.labels import Label, LabelStore, fingerprint


def test_upsert_update_delete_and_survive_reopen(tmp_path):
    path = tmp_path / "p" / "labels.sqlite3"
    store = LabelStore(path)
    store.upsert([Label(1, 10, "hello", "A"), Label(2, 11, "bye", "B")])
    store.upsert([Label(1, 10, "hello", "B")])  # ANNOTATION_UPDATED changes the class
    assert store.count() == 2 and store.get(1).label == "B"
    assert store.delete([2, 99]) == 1
    store.close()
    reopened = LabelStore(path)
    assert [(lb.annotation_id, lb.label) for lb in reopened.all()] == [(1, "B")]


def test_delete_tasks_drops_every_label_of_those_tasks(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "A"), Label(2, 10, "a", "B"), Label(3, 11, "b", "A"), Label(4, 12, "c", "B")])
    assert store.delete_tasks([10, 12, 99]) == 3
    assert [lb.annotation_id for lb in store.all()] == [3]


def test_sync_merge_keeps_what_webhooks_did_during_the_export(tmp_path):
    """Regression: a sync replaced the whole store, losing labels acknowledged during the export
    and resurrecting annotations deleted during it."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "A"), Label(2, 11, "b", "B"), Label(3, 12, "c", "A")])
    time.sleep(0.01)
    started = time.time()  # the sync asks Label Studio for every label...
    # ... and while its export runs, webhooks arrive:
    store.upsert([Label(4, 13, "d", "B")])  # a new annotation (not in the export)
    store.upsert([Label(2, 11, "b", "A")])  # an update (the export has the old class)
    store.delete([3])  # a deletion (the export still has it)
    exported = [Label(1, 10, "a", "A"), Label(2, 11, "b", "B"), Label(3, 12, "c", "A"), Label(5, 14, "e", "B")]
    result = store.merge(exported, started)
    got = {lb.annotation_id: lb.label for lb in store.all()}
    assert got == {1: "A", 2: "A", 4: "B", 5: "B"}
    assert result.kept_newer == 3 and result.removed == 0


def test_sync_merge_mirrors_label_studio_for_everything_older(tmp_path):
    """Labels deleted in Label Studio while the backend was away go; changed ones change."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "A"), Label(2, 11, "b", "B")])
    time.sleep(0.01)
    result = store.merge([Label(1, 10, "a", "B"), Label(3, 12, "c", "A")], time.time())
    assert {lb.annotation_id: lb.label for lb in store.all()} == {1: "B", 3: "A"}
    assert result.removed == 1 and result.written == 2


def test_a_label_stored_again_after_its_deletion_is_kept_by_a_sync(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite3")
    started = time.time()
    store.delete([7])
    store.upsert([Label(7, 70, "x", "A")])  # re-created: the tombstone must not hide it
    store.merge([], started)
    assert [lb.annotation_id for lb in store.all()] == [7]


def test_fingerprint_changes_with_labels_classes_and_context():
    a = [Label(1, 10, "hello", "A"), Label(2, 11, "bye", "B")]
    base = fingerprint(a, "A\x1fB", "enc")
    assert fingerprint(list(reversed(a)), "A\x1fB", "enc") == base  # order does not matter
    assert fingerprint([Label(1, 10, "hello", "B"), a[1]], "A\x1fB", "enc") != base
    assert fingerprint([Label(1, 10, "hello!", "A"), a[1]], "A\x1fB", "enc") != base
    assert fingerprint(a, "A\x1fB\x1fC", "enc") != base
    assert fingerprint(a, "A\x1fB", "other encoder") != base


def test_stores_are_separate_files(tmp_path):
    one, two = LabelStore(tmp_path / "1" / "l.db"), LabelStore(tmp_path / "2" / "l.db")
    one.upsert([Label(1, 1, "x", "A")])
    assert two.count() == 0


def test_the_pool_remembers_tasks_without_labels_and_forgets_deleted_ones(tmp_path, monkeypatch):
    import baal_backend.labels as labels

    store = LabelStore(tmp_path / "l.sqlite3")
    store.remember_tasks([(1, "one"), (2, "two"), (3, "three")])
    store.remember_tasks([(2, "two, edited")])
    store.upsert([Label(10, 3, "three", "a")])
    assert store.unlabeled() == [(1, "one"), (2, "two, edited")]
    store.delete_tasks([1])
    assert store.unlabeled() == [(2, "two, edited")]
    monkeypatch.setattr(labels, "MAX_POOL", 2)
    store.remember_tasks([(7, "seven")])
    store.remember_tasks([(8, "eight")])
    assert [t for t, _ in store.unlabeled()] == [7, 8]  # the newest MAX_POOL remembered
    store.close()
    assert LabelStore(tmp_path / "l.sqlite3").unlabeled() == [(7, "seven"), (8, "eight")]
