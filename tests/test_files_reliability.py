"""Files in, files out (issue 16): nothing lost, nothing overwritten, no traceback, no leftovers.

Covers ``pipelines.evaluate``, ``pipelines.prepare_study`` and :mod:`srkeras.data.io`; the upscale
CLI is in ``test_files_reliability_upscale.py``. Tests run as root in CI, where directory write bits
are ignored: unwritable places are a path under a regular file, or a monkeypatched write.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs import mos_study
from pipelines import evaluate, prepare_study
from srkeras import evaluation, evaluation_run, files, stimuli
from srkeras.data import io as image_io
from srkeras.data.io import ImageLoadError, read_image
from srkeras.files import TEMP_MARK, display_name, remove_stale_temporaries
from tests.conftest import write_images

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(16)
NON_UTF8 = os.fsdecode(b"caf\xe9")  # a valid Linux file name that is not UTF-8 (Latin-1 e-acute)


def _img(path, size=(40, 36)):
    Image.fromarray((RNG.random(size + (3,)) * 255).astype(np.uint8)).save(path)
    return path


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _stale_temp(folder: Path, name: str = ".r.json") -> Path:
    """What a run killed with -9 leaves: a temporary of a dead process, from before this run."""
    f = folder / f"{name}{TEMP_MARK}{_dead_pid()}-0123abcd.json"
    f.write_text("{partial")
    os.utime(f, (time.time() - 60, time.time() - 60))
    return f


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name or p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------------
# Display names, unique keys, stale temporaries, read errors (the shared mechanisms)
# ------------------------------------------------------------------------------------------------


def test_display_name_is_printable_utf8():
    shown = display_name(Path("/x") / f"{NON_UTF8}.png")
    assert shown == "/x/caf\\xe9.png"
    shown.encode("utf-8")  # no lone surrogates left
    assert display_name("plain/é.png") == "plain/é.png"


def test_unique_keys_use_file_names_only_for_colliding_stems():
    keys = evaluation_run.unique_keys([Path("d/a.png"), Path("d/a.jpg"), Path("d/b.png"), Path("d/a.png.png")])
    assert keys == ["a.png", "a.jpg", "b", "a.png.png"]
    assert evaluation_run.unique_keys([Path("x/a.png"), Path("y/a.png")]) == ["a.png", "a.png#2"]  # two folders


def test_stale_temporaries_of_dead_runs_only(tmp_path):
    stale = _stale_temp(tmp_path)
    live = tmp_path / f".x.png{TEMP_MARK}{os.getppid()}-0123abcd.png"  # a live process's temporary
    live.write_text("busy")
    os.utime(live, (time.time() - 60, time.time() - 60))
    fresh = tmp_path / f".y.png{TEMP_MARK}{_dead_pid()}-0123abcd.png"  # newer than the run: not touched
    fresh.write_text("x")
    assert remove_stale_temporaries(tmp_path, time.time() - 30) == [stale]
    assert live.exists() and fresh.exists() and not stale.exists()


def test_unreadable_file_is_reported_as_such(tmp_path, monkeypatch):
    """Root reads chmod-000 files, so the refusal is simulated where the file is opened."""
    p = _img(tmp_path / "locked.png")

    def refuse(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(image_io, "open", refuse, raising=False)
    with pytest.raises(ImageLoadError) as e:
        read_image(p)
    assert "locked.png: cannot read the file (permission denied)" in str(e.value)
    assert "corrupt" not in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod-000 files")
def test_unreadable_file_really(tmp_path):
    p = _img(tmp_path / "locked.png")
    p.chmod(0)
    with pytest.raises(ImageLoadError, match="permission denied"):
        read_image(p)


# ------------------------------------------------------------------------------------------------
# pipelines.evaluate
# ------------------------------------------------------------------------------------------------


def test_evaluate_scores_files_sharing_a_stem(tmp_path, capsys):
    d = tmp_path / "hr"
    d.mkdir()
    _img(d / "a.png")
    Image.open(d / "a.png").save(d / "a.jpg", quality=90)
    _img(d / "b.png")
    (d / "b.gif").write_text("not an image")  # skipped, listed under its own key
    out = tmp_path / "r.json"
    rc = evaluate.main(["--hr-dir", str(d), "--scale", "2", "--out", str(out), "--quiet"])
    assert rc == 1
    res = json.loads(out.read_text())
    assert set(res["methods"]["bicubic"]["images"]) == {"a.png", "a.jpg", "b.png"}
    assert res["methods"]["bicubic"]["n_images"] == 3
    assert set(res["skipped"]) == {"b.gif"}
    assert "a.jpg" in capsys.readouterr().out  # the table lists both


def _scored_nothing(monkeypatch):
    """Make scoring fail loudly: a destination problem must be found before any work."""
    monkeypatch.setattr(evaluation, "prepare", lambda *a, **k: pytest.fail("scored before checking --out"))


def test_evaluate_out_unwritable_is_refused_before_scoring(tmp_path, monkeypatch, capsys):
    d = tmp_path / "hr"
    d.mkdir()
    _img(d / "a.png")
    _scored_nothing(monkeypatch)
    (tmp_path / "file").write_text("x")
    assert evaluate.main(["--hr-dir", str(d), "--out", str(tmp_path / "file" / "r.json"), "--quiet"]) == 2
    assert "file: is not a folder" in capsys.readouterr().err
    assert evaluate.main(["--hr-dir", str(d), "--out", str(d), "--quiet"]) == 2  # names a folder
    assert f"{d}: is a folder" in capsys.readouterr().err

    def read_only(path):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(files, "_new_temp_file", read_only)  # the write test of a read-only folder
    assert evaluate.main(["--hr-dir", str(d), "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: cannot write in this folder (Read-only file system)" in err and "Traceback" not in err


def test_evaluate_full_disk_names_the_path_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    d = tmp_path / "hr"
    d.mkdir()
    _img(d / "a.png")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stale = _stale_temp(out_dir)
    real_write_text = Path.write_text

    def full(self, text, *a, **k):
        real_write_text(self, text[:10])  # part of the file made it before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    rc = evaluate.main(["--hr-dir", str(d), "--out", str(out_dir / "r.json"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"cannot write {out_dir / 'r.json'}: no space left on the device" in err and "Traceback" not in err
    assert sorted(os.listdir(out_dir)) == []  # no result, no temporary (the killed run's one removed too)
    assert not stale.exists()


def test_evaluate_and_its_output_with_non_utf8_names(tmp_path):
    """A UTF-8 terminal (strict stdout) and a file name that is not UTF-8: printed, scored, valid JSON."""
    d = tmp_path / "hr"
    d.mkdir()
    _img(d / f"{NON_UTF8}.png")
    _img(d / "plain.png")
    (d / f"{NON_UTF8}-bad.png").write_text("no")
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "pipelines.evaluate", "--hr-dir", str(d), "--scale", "2", "--out", str(out), "--quiet"],
        capture_output=True, env=env, cwd=ROOT, timeout=300,
    )
    assert r.returncode == 1, r.stderr.decode()  # one skipped
    assert b"Traceback" not in r.stderr
    assert b"caf\\xe9" in r.stdout and b"caf\\xe9-bad.png: not an image" in r.stderr
    res = json.loads(out.read_bytes().decode("utf-8"))
    assert set(res["methods"]["bicubic"]["images"]) == {"caf\\xe9", "plain"}
    assert set(res["skipped"]) == {"caf\\xe9-bad"}


# ------------------------------------------------------------------------------------------------
# pipelines.prepare_study: all or nothing
# ------------------------------------------------------------------------------------------------


def _study_args(hr_dir, url, stim_dir, name="s"):
    return ["--name", name, "--hr-dir", str(hr_dir), "--scale", "4", "--db", url, "--stimuli-dir", str(stim_dir),
            "--no-progress"]


def _study_rows(url) -> int:
    from sqlalchemy import func, select

    from db import open_database
    from db.models import Method, SourceImage, Stimulus, Study

    db = open_database(url)
    try:
        with db.session() as s:
            return sum(s.scalar(select(func.count()).select_from(t)) for t in (Study, Method, SourceImage, Stimulus))
    finally:
        db.close()


def test_prepare_study_full_disk_keeps_neither_rows_nor_files(tmp_path, monkeypatch, capsys):
    hr = write_images(tmp_path / "hr", 4, size=52)
    url = f"sqlite:///{tmp_path / 'mos.db'}"
    stim = tmp_path / "stimuli"
    assert prepare_study.main(_study_args(hr, url, stim, "first")) == 0
    before = sorted(os.listdir(stim))
    rows = _study_rows(url)
    stale = stim / f".staging{TEMP_MARK}{_dead_pid()}-0123abcd"  # a run killed with -9
    stale.mkdir()
    (stale / "x.png").write_bytes(b"x")
    os.utime(stale, (time.time() - 60, time.time() - 60))

    calls = []
    real = stimuli.write_atomically

    def fills_up(path, write, **kw):
        calls.append(path)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write, **kw)

    monkeypatch.setattr(stimuli, "write_atomically", fills_up)
    write_images(tmp_path / "hr2", 4, size=52, seed=7)
    rc = prepare_study.main(_study_args(tmp_path / "hr2", url, stim, "second"))
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "cannot write" in err and "no space left on the device" in err and str(stim) in err
    assert len(calls) > 5  # it failed part-way, after writing some stimuli
    assert sorted(os.listdir(stim)) == before  # the first study's files intact, nothing of the second
    assert _study_rows(url) == rows


def test_prepare_study_failed_registration_keeps_neither_rows_nor_files(tmp_path, monkeypatch, capsys):
    """register_study is one transaction: a failure after its inserts leaves no row (and no file)."""
    from sqlalchemy.exc import OperationalError

    import db.studies

    hr = write_images(tmp_path / "hr", 4, size=52)
    url = f"sqlite:///{tmp_path / 'mos.db'}"
    stim = tmp_path / "stimuli"
    real = db.studies._insert_study

    def insert_then_fail(s, *a, **k):
        real(s, *a, **k)  # rows inserted (and flushed) in the transaction...
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))  # ...then the disk fills

    monkeypatch.setattr(db.studies, "_insert_study", insert_then_fail)
    rc = prepare_study.main(_study_args(hr, url, stim))
    err = capsys.readouterr().err
    assert rc == 1 and "cannot register study 's'" in err and "disk is full" in err and "Traceback" not in err
    assert _study_rows(url) == 0
    assert os.listdir(stim) == []


def test_prepare_study_non_utf8_and_unreadable_files(tmp_path, monkeypatch, capsys):
    hr = write_images(tmp_path / "hr", 3, size=52)
    _img(hr / f"{NON_UTF8}.png", (52, 52))
    _img(hr / "locked.png", (52, 52))
    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    url = f"sqlite:///{tmp_path / 'mos.db'}"
    info, summary = mos_study.make_study(
        mos_study.StudySpec(name="u", hr_dir=hr, db_url=url, stimuli_dir=tmp_path / "st", progress=False), log=print
    )
    out = capsys.readouterr().out
    assert summary["test_images"] == 3 and "caf\\xe9.png" in summary["calibration_images"] + _sources(url)
    assert summary["skipped"] == [f"{hr / 'locked.png'}: cannot read the file (permission denied)"]
    assert "locked.png: cannot read the file (permission denied)" in out


def _sources(url) -> list[str]:
    from sqlalchemy import select

    from db import open_database
    from db.models import SourceImage

    db = open_database(url)
    try:
        with db.session() as s:
            return list(s.scalars(select(SourceImage.name)))
    finally:
        db.close()
