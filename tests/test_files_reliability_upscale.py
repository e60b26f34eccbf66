"""``pipelines.upscale`` files in, files out (issue 16): every input accounted for, no output written
over another, destinations and --max-memory checked before any work, kill -9 leftovers removed,
non-UTF-8 names printed, palette outputs into a new folder with mode 0644."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from pipelines import upscale
from srkeras.files import TEMP_MARK
from srkeras.models.layers import PixelShuffle

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(61)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    inp = keras.Input((None, None, 3))
    p = tmp_path_factory.mktemp("m") / "tiny.keras"
    keras.Model(inp, PixelShuffle(2)(keras.layers.Conv2D(12, 3, padding="same")(inp))).save(p)
    return str(p)


def _img(path, size=(12, 10)):
    Image.fromarray((RNG.random(size + (3,)) * 255).astype(np.uint8)).save(path)
    return path


def test_colliding_destinations_are_refused_before_any_work(tmp_path, model, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    for d in (one, two):
        _img(d / "a.png")
    _img(one / "b.png")
    _img(one / "b.gif")  # a GIF is written as PNG: b.png too
    _img(two / "c.png")
    out = tmp_path / "out"
    rc = upscale.main([str(one), str(two), "--model", model, "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "written 1, skipped 0, failed 4" in text  # five inputs, every one accounted for
    assert sorted(os.listdir(out)) == ["c.png"]  # nothing written over anything
    for src in (one / "a.png", two / "a.png", one / "b.png", one / "b.gif"):
        assert any(str(src) in line and "would be written to" in line for line in text.splitlines()), src
    # The same again with --overwrite: still refused (not one written over the other).
    assert upscale.main([str(one), str(two), "--model", model, "--out", str(out), "--quiet", "--overwrite"]) == 1
    assert "written 1, skipped 0, failed 4" in capsys.readouterr().out


def test_output_over_its_own_input_is_refused(tmp_path, model, capsys):
    d = tmp_path / "d"
    d.mkdir()
    before = _img(d / "a.png").read_bytes()
    assert upscale.main([str(d / "a.png"), "--model", model, "--out", str(d), "--overwrite", "--quiet"]) == 1
    assert "is its own output" in capsys.readouterr().out and (d / "a.png").read_bytes() == before


def test_out_folder_problems_and_max_memory_are_found_before_work(tmp_path, model, capsys, monkeypatch):
    _img(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(upscale, "_load", lambda args: pytest.fail("the model was loaded before the checks"))
    assert upscale.main([str(tmp_path / "a.png"), "--model", model, "--out", str(tmp_path / "file" / "o")]) == 2
    assert "file: is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        upscale.main([str(tmp_path / "a.png"), "--model", model, "--out", str(tmp_path / "o"), "--max-memory", "abc"])
    assert e.value.code == 2
    assert "--max-memory: 'abc' is not a memory size" in capsys.readouterr().err


def test_full_disk_names_the_output_and_leaves_no_temporary(tmp_path, model, capsys, monkeypatch):
    _img(tmp_path / "a.png")
    out = tmp_path / "out"
    from srkeras.data import png16

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(png16.PngStreamWriter, "write", full)
    assert upscale.main([str(tmp_path / "a.png"), "--model", model, "--out", str(out), "--quiet"]) == 1
    text = capsys.readouterr().out
    assert f"cannot write {out / 'a.png'}: no space left on the device" in text
    assert os.listdir(out) == []


def test_rerun_removes_what_a_killed_run_left(tmp_path, model):
    _img(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".a.png{TEMP_MARK}{dead.pid}-0123abcd.png"
    stale.write_bytes(b"\x89PNG half")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    live = out / f".b.png{TEMP_MARK}{os.getppid()}-0123abcd.png"  # another run, still going
    live.write_bytes(b"busy")
    assert upscale.main([str(tmp_path / "a.png"), "--model", model, "--out", str(out), "--quiet"]) == 0
    assert sorted(os.listdir(out)) == sorted(["a.png", live.name])


def test_palette_into_a_new_folder_is_0644(tmp_path, model):
    old = os.umask(0o022)
    try:
        Image.fromarray((RNG.random((12, 10, 3)) * 255).astype(np.uint8)).quantize(8).save(tmp_path / "pal.png")
        out = tmp_path / "new" / "deeper"
        assert upscale.main([str(tmp_path / "pal.png"), "--model", model, "--out", str(out), "--quiet"]) == 0
        with Image.open(out / "pal.png") as im:
            assert im.mode == "P" and im.size == (20, 24)
        assert stat.S_IMODE(os.stat(out / "pal.png").st_mode) == 0o644
    finally:
        os.umask(old)


def test_non_utf8_names_on_a_utf8_terminal(tmp_path, model):
    name = os.fsdecode(b"caf\xe9.png")
    _img(tmp_path / name)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "pipelines.upscale", str(tmp_path / name), "--model", model, "--out", str(out), "--quiet"],
        capture_output=True, env=env, cwd=ROOT, timeout=300,
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert b"wrote   " in r.stdout and b"caf\\xe9.png" in r.stdout
    assert os.listdir(os.fsencode(out)) == [b"caf\xe9.png"]  # the output keeps the real name
