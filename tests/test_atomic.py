"""Write-then-rename outputs: the target appears whole or not at all, an old one survives a failure."""

import os
import stat

import pytest

from ctapipe_gammalearn.atomic import AtomicOutput, atomic_dir, atomic_path


class Boom(Exception):
    pass


def _leftovers(directory, keep=()):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_file_success_renames(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.is_file() and tmp.name.startswith(".out.json.")
        assert not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _leftovers(target.parent) == ["out.json"]


def test_file_has_the_mode_of_a_new_file(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_file_suffix(tmp_path):
    with atomic_path(tmp_path / "out.h5", suffix=".partial.h5") as tmp:
        assert tmp.name.endswith(".partial.h5")
        tmp.write_bytes(b"x")


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt, SystemExit])
def test_file_failure_leaves_nothing(tmp_path, error):
    target = tmp_path / "out.json"
    with pytest.raises(error), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise error()
    assert _leftovers(tmp_path) == []


def test_file_failure_keeps_old_target(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom()
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == ["out.json"]


def test_file_replaces_old_target(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == ["out.json"]


def test_file_removed_by_writer_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.unlink()
    assert _leftovers(tmp_path) == []


def test_dir_success_renames(tmp_path):
    target = tmp_path / "report"
    with atomic_dir(target) as tmp:
        assert tmp.is_dir() and tmp.parent == tmp_path and list(tmp.iterdir()) == []
        (tmp / "a.txt").write_text("a")
        (tmp / "nested").mkdir()
        (tmp / "nested" / "b.txt").write_text("b")
    assert (target / "a.txt").read_text() == "a"
    assert (target / "nested" / "b.txt").read_text() == "b"
    assert _leftovers(tmp_path) == ["report"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_umask()


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_dir_failure_leaves_nothing(tmp_path, error):
    with pytest.raises(error), atomic_dir(tmp_path / "report") as tmp:
        (tmp / "a.txt").write_text("half")
        raise error()
    assert _leftovers(tmp_path) == []


def test_dir_failure_keeps_old_target(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise Boom()
    assert _leftovers(target) == ["old.txt"]
    assert _leftovers(tmp_path) == ["report"]


def test_dir_replaces_old_target(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _leftovers(target) == ["new.txt"]
    assert _leftovers(tmp_path) == ["report"]


def test_dir_without_overwrite_refuses_an_existing_target(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "theirs.txt").write_text("theirs")
    with pytest.raises(FileExistsError), atomic_dir(target, overwrite=False) as tmp:
        (tmp / "mine.txt").write_text("mine")
    assert _leftovers(target) == ["theirs.txt"]
    assert _leftovers(tmp_path) == ["cache"]


def test_explicit_commit_across_steps(tmp_path):
    target = tmp_path / "out.h5"
    with AtomicOutput(target, suffix=".partial.h5") as output:
        output.tmp.write_text("step 1")
        assert not target.exists()
        output.commit()
    assert target.read_text() == "step 1"
    with AtomicOutput(target) as output:
        output.tmp.write_text("never committed")
    assert target.read_text() == "step 1"
    assert _leftovers(tmp_path) == ["out.h5"]
