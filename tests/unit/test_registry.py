import json

import pytest

from baal_backend.registry import Registry, version_number


def _save(content):
    def save(path):
        (path / "weights.bin").write_text(content)
    return save


def test_publish_makes_current_and_names_increase(tmp_path):
    reg = Registry(tmp_path)
    assert reg.current() is None and reg.list() == []
    a = reg.publish(_save("a"), {"n_labels": 1})
    b = reg.publish(_save("b"), {"n_labels": 2})
    assert version_number(a) == 1 and version_number(b) == 2 and a < b
    assert reg.current() == b and reg.list() == [a, b]
    assert reg.meta(b)["n_labels"] == 2 and reg.meta(b)["version"] == b
    assert (reg.path(b) / "weights.bin").read_text() == "b"


def test_failed_publish_keeps_previous_version_and_leaves_nothing(tmp_path):
    reg = Registry(tmp_path)
    good = reg.publish(_save("good"), {})

    def crash(path):
        (path / "half.bin").write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        reg.publish(crash, {})
    assert reg.current() == good and reg.list() == [good]
    assert not list(reg.versions_dir.glob(".tmp-*"))


def test_crash_remnants_are_ignored_and_removed_only_when_asked(tmp_path):
    """Regression: opening a registry removed temp dirs, including another process's publish in
    progress. Now only `remove_strays` (called under the project's training lock) does."""
    reg = Registry(tmp_path)
    good = reg.publish(_save("good"), {})
    stray = reg.versions_dir / ".tmp-deadbeef"  # a kill -9 in the middle of writing, or a publish going on
    stray.mkdir()
    (stray / "weights.bin").write_text("half")
    incomplete = reg.versions_dir / "v0002-20260101-000000"  # renamed but no meta: never valid
    incomplete.mkdir()
    again = Registry(tmp_path)
    assert again.current() == good and again.list() == [good]
    assert stray.exists()
    assert again.remove_strays() == 1 and not stray.exists()


def test_reading_an_empty_registry_creates_nothing(tmp_path):
    reg = Registry(tmp_path / "p")
    assert reg.current() is None and reg.list() == [] and reg.remove_strays() == 0
    assert not (tmp_path / "p").exists()


def test_current_survives_restart_and_falls_back_when_pointer_is_lost(tmp_path):
    reg = Registry(tmp_path)
    reg.publish(_save("1"), {})
    second = reg.publish(_save("2"), {})
    assert Registry(tmp_path).current() == second
    (tmp_path / "current.json").write_text("{torn")
    assert Registry(tmp_path).current() == second
    (tmp_path / "current.json").write_text(json.dumps({"version": "v0009-20260101-000000"}))
    assert Registry(tmp_path).current() == second


def test_prunes_beyond_keep_but_never_current(tmp_path):
    reg = Registry(tmp_path, keep=2)
    names = [reg.publish(_save(str(i)), {}) for i in range(5)]
    assert reg.list() == names[-2:] and reg.current() == names[-1]


def test_pruning_spares_a_version_being_loaded_or_served(tmp_path):
    """Regression: with KEEP_VERSIONS=1 a publish deleted the version another thread was loading."""
    reg = Registry(tmp_path, keep=1)
    first = reg.publish(_save("1"), {})
    reg.pin(first)
    second = reg.publish(_save("2"), {})
    assert reg.list() == [first, second]
    assert (reg.path(first) / "weights.bin").read_text() == "1"
    reg.unpin(first)
    third = reg.publish(_save("3"), {})
    assert reg.list() == [third]


def test_a_broken_version_is_skipped_and_never_renumbered(tmp_path):
    reg = Registry(tmp_path)
    good = reg.publish(_save("good"), {})
    bad = reg.publish(_save("bad"), {})
    reg.mark_broken(bad, "cannot be loaded")
    assert reg.current() == good and reg.list() == [good]
    assert Registry(tmp_path).current() == good  # every process sees it
    third = reg.publish(_save("3"), {})
    assert version_number(third) == 3 and reg.current() == third
