"""Study builder: blind content-addressed stimuli, metrics vs HR, calibration split, CLI errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db import get_study, open_database
from db.models import Method, SourceImage, Stimulus, Study
from jobs import mos_study
from pipelines import prepare_study
from srkeras.data import load_image
from srkeras.metrics import psnr, ssim
from srkeras.stimuli import StudyInputError, png_chunks
from tests.conftest import write_images

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def stimuli_by(db, name):
    """{(source, method): Stimulus} with the study's stimuli dir."""
    with db.session() as s:
        st = s.scalars(select(Study).where(Study.name == name)).one()
        rows = s.execute(
            select(Stimulus, SourceImage, Method)
            .join(SourceImage, Stimulus.source_id == SourceImage.id)
            .join(Method, Stimulus.method_id == Method.id)
            .where(Stimulus.study_id == st.id)
        ).all()
        return Path(st.stimuli_dir), {(src.name, m.name): (x, src, m) for x, src, m in rows}


def test_cli_builds_blind_study(tmp_path, capsys):
    hr_dir = write_images(tmp_path / "hr", 5, size=52)  # 52 -> modcrop 52 (x4), LR 13x13
    (hr_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (hr_dir / "zz_text.jpg").write_text("hello")
    url = f"sqlite:///{tmp_path / 'db' / 'mos.db'}"
    rc = prepare_study.main(
        ["--name", "cli", "--hr-dir", str(hr_dir), "--scale", "4", "--method", "nearest", "--method", "bicubic",
         "--method", "hr", "--mode", "acr", "--votes-per-stimulus", "4", "--db", url, "--no-progress",
         "--trials-per-rater", "10", "--break-every", "5", "--repeats", "1"]
    )
    out = capsys.readouterr()
    assert rc == 1  # registered, but files were skipped: exit 1, like pipelines.evaluate (issue 16)
    assert "broken.png" in out.err and "zz_text.jpg" in out.err  # bad files named and skipped
    assert "4 test images" in out.out and "skipped 2 file(s)" in out.out

    db = open_database(url)
    try:
        info = get_study(db, "cli")
        assert (info.mode, info.scale, info.votes_per_stimulus, info.trials_per_rater, info.break_every, info.repeats) == (
            "acr", 4, 4, 10, 5, 1)
        stim_dir, stims = stimuli_by(db, "cli")
        assert stim_dir == (tmp_path / "db" / "stimuli").resolve()  # default: beside the SQLite file
        roles = {m.name: m.role for _, _, m in stims.values()}
        assert roles == {"nearest": "low_anchor", "bicubic": "test", "hr": "high_anchor"}
        cal = {src.name for _, src, _ in stims.values() if src.is_calibration}
        assert len(cal) == 1
        assert sorted(m for (s_, m) in stims if s_ in cal) == ["hr", "nearest"]  # anchors only
        assert len(stims) == 4 * 3 + 2
        for (src_name, method), (x, src, _) in stims.items():
            path = stim_dir / f"{x.sha256}.png"
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == x.sha256
            assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]  # no metadata at all
            assert method not in path.name and src_name.split(".")[0] not in path.name
            shown = load_image(path)
            hr = load_image(stim_dir / f"{stims[(src_name, 'hr')][0].sha256}.png")
            assert shown.shape == (52, 52, 3) == hr.shape and (x.width, x.height) == (52, 52)
            if method == "hr":
                assert x.psnr is None and x.ssim == pytest.approx(1.0)
                # HR stimulus = the source file's pixels
                assert np.array_equal(shown, load_image(hr_dir / src_name))
                assert src.hr_sha256 == hashlib.sha256((hr_dir / src_name).read_bytes()).hexdigest()
            else:
                assert x.psnr == pytest.approx(psnr(shown, hr, crop_border=4), abs=1e-9)
                assert x.ssim == pytest.approx(ssim(shown, hr, crop_border=4), abs=1e-9)
                assert x.psnr < 60
        for s_ in {s_ for s_, _ in stims} - cal:
            assert stims[(s_, "nearest")][0].psnr < stims[(s_, "bicubic")][0].psnr
            # nearest = pixel replication of the LR: every 4x4 block is flat
            nn = load_image(stim_dir / f"{stims[(s_, 'nearest')][0].sha256}.png")
            assert np.array_equal(nn, np.repeat(np.repeat(nn[::4, ::4], 4, 0), 4, 1))
    finally:
        db.close()


def test_rebuild_is_deterministic_and_refuses_existing_name(tmp_path, make_study):
    a = make_study(f"sqlite:///{tmp_path / 'a.db'}", name="a", stimuli_dir=tmp_path / "sa")
    b = make_study(f"sqlite:///{tmp_path / 'b.db'}", name="a", stimuli_dir=tmp_path / "sb")
    assert sorted(p.name for p in Path(tmp_path / "sa").iterdir()) == sorted(p.name for p in Path(tmp_path / "sb").iterdir())
    with pytest.raises(StudyInputError, match="already exists"):
        make_study(a.url, name="a", stimuli_dir=tmp_path / "sa")
    assert b.summary["test_images"] == 4


def test_crop_and_calibration_choice(tmp_path, make_study):
    st = make_study(f"sqlite:///{tmp_path / 'c.db'}", n_images=5, size=64, crop=32, calibration=("img03.png",))
    db = st.open()
    try:
        stim_dir, stims = stimuli_by(db, st.name)
        assert {(x.width, x.height) for x, _, _ in stims.values()} == {(32, 32)}
        assert {src.name for _, src, _ in stims.values() if src.is_calibration} == {"img03.png"}
        assert st.info.crop == 32
    finally:
        db.close()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(crop=30), "multiple of --scale"),
        (dict(methods=("nearest", "lanczos")), "choose from"),
        (dict(n_images=1), "at least 2"),  # one image: nothing to compare it with
        (dict(crop=64), "at least 2"),  # every 48px image is smaller than the crop: all skipped
        (dict(models=("nope/missing.keras",)), "missing.keras"),
    ],
)
def test_builder_errors(tmp_path, make_study, options, message):
    if "models" in options:
        pytest.importorskip("srkeras.inference")
    with pytest.raises(StudyInputError, match=message):
        make_study(f"sqlite:///{tmp_path / 'e.db'}", **options)


def test_anchors_are_always_added(tmp_path, make_study):
    st = make_study(f"sqlite:///{tmp_path / 'x.db'}", methods=("bicubic",))
    db = st.open()
    try:
        _, stims = stimuli_by(db, st.name)
        assert {m.name: m.role for _, _, m in stims.values()} == {
            "bicubic": "test", "nearest": "low_anchor", "hr": "high_anchor"}
    finally:
        db.close()


def test_model_stimuli(tmp_path, make_study):
    """--model PATH.keras: method named after the file stem; a x4 pixel-replication model gives
    byte-identical stimuli to the nearest anchor (same content hash)."""
    pytest.importorskip("srkeras.inference")
    keras = pytest.importorskip("keras")
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.UpSampling2D(4, interpolation="nearest")(inp))
    path = tmp_path / "nn_model.keras"
    model.save(path)
    st = make_study(f"sqlite:///{tmp_path / 'm.db'}", models=(str(path),))
    db = st.open()
    try:
        _, stims = stimuli_by(db, st.name)
        srcs = {s_ for (s_, m) in stims if m == "nn_model"}
        assert len(srcs) == 4  # test sources only, not the calibration image
        for s_ in srcs:
            assert stims[(s_, "nn_model")][0].sha256 == stims[(s_, "nearest")][0].sha256
        assert st.summary["methods"]["nn_model"]["psnr"] == pytest.approx(st.summary["methods"]["nearest"]["psnr"])
    finally:
        db.close()


@pytest.mark.skipif(not (SHARED / "Set5").is_dir(), reason="shared Set5 data not available")
def test_set5_bicubic_stimuli_match_published_psnr(tmp_path):
    """Whole Set5 images at x4: the bicubic stimuli score the published 28.42 dB / 0.8104 (Y, shaved)."""
    info, summary = mos_study.make_study(mos_study.StudySpec(
        name="set5", hr_dir=SHARED / "Set5", db_url=f"sqlite:///{tmp_path / 's5.db'}", scale=4,
        calibration_images=0, progress=False,
    ), log=lambda m: None)
    assert summary["test_images"] == 5
    assert summary["methods"]["bicubic"]["psnr"] == pytest.approx(28.42, abs=0.02)
    assert summary["methods"]["bicubic"]["ssim"] == pytest.approx(0.8104, abs=0.002)
    assert summary["methods"]["nearest"]["psnr"] < 27.0
