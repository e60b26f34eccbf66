"""Serving pretrained models by name: ``--model NAME`` through the CLIs, sidecar facts, pre-padding.

The ncnn references (tests/fixtures/pretrained/README.md) are reproduced to <= 1 grey level through
``pipelines.upscale`` itself, tiled and untiled, with the receptive field read from the sidecar (no
probe runs). Registry-marked tests fetch the pinned wheel like tests/test_pretrained_fetch.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srkeras import pretrained
from srkeras.inference import probing, running
from srkeras.inference.sidecar import ModelSidecar

FIX = Path(__file__).parent / "fixtures" / "pretrained"
# Measured by ``pretrained.fetch(name)`` (run_probe=True; RF_TOL 1e-5): whole model and tail, LR px.
# realesrgan_x4plus is fetched without the probe (about 2 minutes on 2 cores) and given these.
MEASURED = {"realesrgan_x4plus": {"receptive_field": 103, "tail_receptive_field": 2}}


def _fetch_or_skip(name, run_probe):
    try:
        return pretrained.fetch(name, run_probe=run_probe)
    except pretrained.OfflineError as e:
        pytest.skip(f"registry not reachable: {e}")


def _set_sidecar(path: Path, **values) -> None:
    side = path.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), **values}))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A models directory holding the two ncnn-verified models, sidecars with receptive fields."""
    d = tmp_path_factory.mktemp("models")
    mp = pytest.MonkeyPatch()
    mp.setenv("SRKERAS_MODEL_DIR", str(d))
    try:
        _fetch_or_skip("realesr_animevideov3", run_probe=True)
        path = _fetch_or_skip("realesrgan_x4plus", run_probe=False)
        _set_sidecar(path, rf_tol=probing.RF_TOL, **MEASURED["realesrgan_x4plus"])
        yield d
    finally:
        mp.undo()


@pytest.fixture
def no_probe(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the receptive field was probed although the sidecar has it")

    monkeypatch.setattr(probing, "measure_receptive_field", refuse)


def _model_calls(monkeypatch) -> list:
    calls = []
    real = running.run_model

    def counted(model, batch):
        calls.append(batch.shape)
        return real(model, batch)

    monkeypatch.setattr(running, "run_model", counted)
    return calls


@pytest.mark.registry
# Tiled: the padded input is 44x40 LR px; with margins of R + 2 (20 and 105 px) small cores make
# several trunk tiles (SRVGGNetCompact) or several tail tiles after one trunk window (RRDBNet).
@pytest.mark.parametrize(
    "name, tile",
    [("realesr_animevideov3", 0), ("realesr_animevideov3", 2), ("realesrgan_x4plus", 0), ("realesrgan_x4plus", 8)],
)
def test_upscale_cli_reproduces_ncnn(name, tile, served, no_probe, tmp_path, monkeypatch):
    from pipelines import upscale

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(served))
    assert ModelSidecar.read(served / f"{name}.keras").pre_pad == 10
    calls = _model_calls(monkeypatch)
    out = tmp_path / "out"
    # float32: the exactness to ncnn (the default, auto, is bfloat16 on a CPU with AMX / AVX512-BF16)
    rc = upscale.main([str(FIX / "ncnn_input.png"), "--model", name, "--tile", str(tile), "--out", str(out), "--quiet",
                       "--precision", "float32"])  # fmt: skip
    assert rc == 0
    got = np.asarray(Image.open(out / "ncnn_input.png").convert("RGB"), np.int16)
    ref = np.asarray(Image.open(FIX / f"ncnn_{name}.png").convert("RGB"), np.int16)
    assert got.shape == ref.shape == (80, 96, 3)
    assert np.abs(got - ref).max() <= 1
    assert (sum(n for n, *_ in calls) > 1) == (tile != 0)  # tiled: several tiles of the padded 44x40 input


@pytest.mark.registry
def test_stale_sidecar_falls_back_to_probing(served, tmp_path, monkeypatch):
    from srkeras.inference import load_generator, receptive_field, upscale

    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(d))
    src = served / "realesr_animevideov3"
    (d / "anime.keras").write_bytes(src.with_suffix(".keras").read_bytes())
    meta = json.loads(src.with_suffix(".json").read_text())
    (d / "anime.json").write_text(json.dumps({**meta, "receptive_field": 1}))
    probed = []
    real = probing.measure_receptive_field
    monkeypatch.setattr(probing, "measure_receptive_field", lambda *a, **k: probed.append(1) or real(*a, **k))
    assert receptive_field(load_generator("anime")) == 1 and not probed  # the sidecar is believed
    for stale in ({"model_sha256": "0" * 64}, {"rf_tol": 1e-3}):
        (d / "anime.json").write_text(json.dumps({**meta, "receptive_field": 1, **stale}))
        assert receptive_field(load_generator("anime")) == meta["receptive_field"] == 18
    assert len(probed) == 2
    # A stale sidecar loses the pre-padding too: then the output differs from ncnn at the borders.
    (d / "anime.json").write_text(json.dumps({**meta, "model_sha256": "0" * 64}))
    x = np.asarray(Image.open(FIX / "ncnn_input.png").convert("RGB"), np.float32) / 255
    ref = np.asarray(Image.open(FIX / "ncnn_realesr_animevideov3.png").convert("RGB"), np.float32)
    assert np.abs(np.round(upscale(load_generator("anime"), x, tile=0) * 255) - ref).max() > 1


def test_catalogue_name_not_installed_names_the_fetch_command(tmp_path, monkeypatch, capsys):
    from pipelines import evaluate, export, upscale

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "empty"))
    fetch = "python -m pipelines.pretrained fetch realesrgan_x4plus"
    rc = upscale.main([str(FIX / "ncnn_input.png"), "--model", "realesrgan_x4plus", "--out", str(tmp_path / "o")])
    assert rc == 2 and fetch in capsys.readouterr().err
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.open(FIX / "ncnn_input.png").save(hr / "a.png")
    assert evaluate.main(["--hr-dir", str(hr), "--model", "realesrgan_x4plus", "--quiet"]) == 2
    assert fetch in capsys.readouterr().err
    assert export.main(["--model", "realesrgan_x4plus", "--out", str(tmp_path / "e")]) == 2
    assert fetch in capsys.readouterr().err


@pytest.mark.registry
def test_export_keeps_the_pre_padding(served, tmp_path, monkeypatch):
    import tensorflow as tf

    from pipelines import export
    from srkeras.inference import load_generator, upscale

    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(served))
    x = np.asarray(Image.open(FIX / "ncnn_input.png").convert("RGB"), np.float32) / 255
    ref = np.asarray(Image.open(FIX / "ncnn_realesr_animevideov3.png").convert("RGB"), np.float32)
    assert export.main(["--model", "realesr_animevideov3", "--out", str(tmp_path / "sm")]) == 0
    sr = tf.saved_model.load(str(tmp_path / "sm" / "saved_model")).signatures["serving_default"](lr=tf.constant(x[None]))
    assert np.abs(np.round(np.clip(sr["sr"].numpy()[0], 0, 1) * 255) - ref).max() <= 1
    assert export.main(["--model", "realesr_animevideov3", "--out", str(tmp_path / "k"), "--format", "keras"]) == 0
    m = load_generator(tmp_path / "k" / "model.keras")
    assert m.pre_pad == 10 and np.abs(np.round(upscale(m, x, tile=0) * 255) - ref).max() <= 1
