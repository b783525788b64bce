from baal_backend.labels import Label, LabelStore


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
    assert reopened.task_ids() == {10}


def test_replace_all_makes_a_full_sync(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite3")
    store.upsert([Label(1, 10, "a", "A"), Label(2, 11, "b", "B")])
    store.upsert([Label(3, 12, "c", "A")], replace_all=True)
    assert [lb.annotation_id for lb in store.all()] == [3]


def test_stores_are_separate_files(tmp_path):
    one, two = LabelStore(tmp_path / "1" / "l.db"), LabelStore(tmp_path / "2" / "l.db")
    one.upsert([Label(1, 1, "x", "A")])
    assert two.count() == 0
