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


def test_a_label_stored_again_after_its_emptying_is_kept_by_a_sync(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite3")
    started = time.time()
    store.delete([7], emptied_at=T0)  # the annotation's choice was cleared in Label Studio...
    assert store.upsert([Label(7, 70, "x", "A", source_updated_at=T0 + 1)]) == 1  # ...and set again
    store.merge([], started)
    assert [lb.annotation_id for lb in store.all()] == [7]


T0 = 1_735_732_800.123456  # 2025-01-01T12:00:00.123456Z, as Label Studio dates an annotation


def test_an_older_update_never_overwrites_a_newer_one(tmp_path):
    """Webhooks arrive out of order: Label Studio's `updated_at` decides, not the arrival."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "new", source_updated_at=T0 + 0.000001)])
    assert store.upsert([Label(1, 10, "a", "old", source_updated_at=T0)]) == 0
    assert store.get(1).label == "new" and store.get(1).source_updated_at == T0 + 0.000001
    assert store.upsert([Label(1, 10, "a", "newer", source_updated_at=T0 + 5)]) == 1
    assert store.upsert([Label(1, 10, "a", "undated")]) == 1  # no time from the source: the arrival decides
    assert store.get(1).label == "undated"


def test_a_deleted_annotation_is_never_revived(tmp_path):
    """Label Studio cannot undelete an annotation: any later event for it is a late one."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "A", source_updated_at=T0), Label(2, 11, "b", "B", source_updated_at=T0)])
    store.delete([1])
    store.delete_tasks([11])
    late = [Label(1, 10, "a", "B", source_updated_at=T0 + 60), Label(2, 11, "b", "A"), Label(3, 12, "c", "A")]
    assert store.upsert(late) == 1
    assert [lb.annotation_id for lb in store.all()] == [3]
    started = time.time()
    store.merge([Label(3, 12, "c", "A", source_updated_at=T0)], started)  # a sync keeps the tombstones
    assert store.upsert([Label(1, 10, "a", "B", source_updated_at=T0 + 120)]) == 0


def test_an_emptied_annotation_follows_the_source_times(tmp_path):
    """Emptied (or cancelled) at t: an older label stays out, a newer one comes back; a late
    emptying never removes a newer label."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "A", source_updated_at=T0)])
    assert store.delete([1], emptied_at=T0 + 10) == 1
    assert store.upsert([Label(1, 10, "a", "A", source_updated_at=T0 + 5)]) == 0
    assert store.upsert([Label(1, 10, "a", "B", source_updated_at=T0 + 20)]) == 1
    assert store.delete([1], emptied_at=T0 + 10) == 0
    assert store.get(1).label == "B"


def test_the_sync_follows_the_source_times_too(tmp_path):
    """A late, older webhook that arrived during the export loses to the export; an export older
    than a stored webhook's label loses to it."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(2, 11, "b", "new", source_updated_at=T0 + 10)])
    started = time.time()
    store.upsert([Label(1, 10, "a", "old", source_updated_at=T0)])  # a late webhook, during the export
    exported = [Label(1, 10, "a", "new", source_updated_at=T0 + 10), Label(2, 11, "b", "old", source_updated_at=T0)]
    result = store.merge(exported, started)
    assert {lb.annotation_id: lb.label for lb in store.all()} == {1: "new", 2: "new"}
    assert (result.written, result.kept_newer) == (1, 1)


def test_a_sync_that_still_finds_a_deleted_annotation_restores_it(tmp_path):
    """Label Studio deletes before it sends the webhook: an export begun after the deletion arrived
    that still has the annotation proves the deletion wrong (a forged webhook)."""
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(5, 50, "e", "A", source_updated_at=T0)])
    store.delete([5])
    time.sleep(0.01)
    store.merge([Label(5, 50, "e", "A", source_updated_at=T0)], time.time())
    assert store.get(5).label == "A"
    assert store.upsert([Label(5, 50, "e", "B", source_updated_at=T0 + 1)]) == 1  # and it lives on


def test_a_label_file_of_the_previous_format_keeps_its_rows(tmp_path):
    """Regression: the store gained a column; a labels.sqlite3 written before must open in place,
    rows and deletions intact, and then take dated labels."""
    import sqlite3

    path = tmp_path / "labels.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE labels (annotation_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, text TEXT NOT NULL,
                             label TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE INDEX labels_task ON labels(task_id);
        CREATE TABLE tasks (task_id INTEGER PRIMARY KEY, text TEXT NOT NULL, seen_at REAL NOT NULL);
        CREATE TABLE tombstones (annotation_id INTEGER PRIMARY KEY, deleted_at REAL NOT NULL);
        INSERT INTO labels VALUES (1, 10, 'hello', 'A', 100.0), (2, 11, 'bye', 'B', 101.0);
        INSERT INTO tasks VALUES (12, 'pool text', 102.0);
        INSERT INTO tombstones VALUES (3, 103.0);
    """)
    old.commit()
    old.close()
    store = LabelStore(path)
    assert store.all() == [Label(1, 10, "hello", "A", 100.0, 0.0), Label(2, 11, "bye", "B", 101.0, 0.0)]
    assert store.unlabeled() == [(12, "pool text")]
    assert store.upsert([Label(3, 12, "pool text", "A", source_updated_at=T0)]) == 0  # still deleted
    assert store.upsert([Label(1, 10, "hello", "B", source_updated_at=T0)]) == 1
    assert store.upsert([Label(1, 10, "hello", "A", source_updated_at=T0 - 1)]) == 0
    store.close()
    assert LabelStore(path).get(1).label == "B"  # and it opens again as is


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
