"""The library half of study making: blind PNG storage (srkeras.stimuli) and the stimulus set
(srkeras.stimulus_set: typed errors, calibration choice, stimuli and their scores)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from srkeras import evaluation, stimuli, stimulus_set
from tests.conftest import write_images


def test_file_name_and_png_without_metadata(tmp_path):
    data = stimuli.png_bytes(np.full((8, 8, 3), 0.5, np.float32))
    assert stimuli.png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    sha = stimuli.store(tmp_path, data)
    assert sha == hashlib.sha256(data).hexdigest() and stimuli.file_name(sha) == f"{sha}.png"
    assert (tmp_path / stimuli.file_name(sha)).read_bytes() == data
    assert stimuli.store(tmp_path, data) == sha  # idempotent


def test_staging_commits_all_or_rolls_back_only_its_own_files(tmp_path):
    first, second = (stimuli.png_bytes(np.full((8, 8, 3), v, np.float32)) for v in (0.25, 0.75))
    kept = stimuli.store(tmp_path, first)  # an earlier run's file
    staging = stimuli.Staging(tmp_path)
    assert stimuli.store(tmp_path, first, into=staging.dir) == kept and not any(staging.dir.iterdir())
    new = stimuli.store(tmp_path, second, into=staging.dir)
    assert not (tmp_path / stimuli.file_name(new)).exists()  # staged, not yet in
    assert staging.commit() == [tmp_path / stimuli.file_name(new)]
    staging.rollback()
    assert sorted(p.name for p in tmp_path.iterdir()) == [stimuli.file_name(kept)]  # the earlier file stays


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(scale=0), stimulus_set.BadOption, "--scale"),
        (dict(crop=30), stimulus_set.BadOption, "multiple of --scale"),
        (dict(methods=("lanczos",)), stimulus_set.BadOption, "choose from"),
        (dict(models=("bicubic=x.keras",)), stimulus_set.BadOption, "unique"),
    ],
)
def test_plan_raises_typed_errors(kwargs, error, message):
    with pytest.raises(error, match=message) as e:
        stimulus_set.plan(**kwargs)
    assert isinstance(e.value, stimuli.StudyInputError) and isinstance(e.value, ValueError)


def test_plan_adds_the_hidden_anchors():
    p = stimulus_set.plan(4, methods=("bicubic",), models=("mine=some/run",))
    assert p.classical == ("bicubic", "nearest", "hr") and p.added_anchors == ("nearest", "hr")
    assert p.methods() == [("bicubic", "test", "bicubic"), ("nearest", "low_anchor", "nearest"),
                           ("hr", "high_anchor", "hr"), ("mine", "test", "some/run")]


def test_calibration_choice(tmp_path):
    files = [tmp_path / f"img{i}.png" for i in range(5)]
    order, choice = stimulus_set.choose_calibration(files, names=("img3",))
    assert order == files and [choice.take(f) for f in files] == [False, False, False, True, False]
    order, choice = stimulus_set.choose_calibration(files, count=10, seed=1)
    assert sorted(order) == files and sum(choice.take(f) for f in order) == 3  # all but two at most
    with pytest.raises(stimulus_set.UnknownCalibration, match="nope"):
        stimulus_set.choose_calibration(files, names=("nope",), folder=tmp_path)
    with pytest.raises(stimulus_set.NoImages):
        stimulus_set.list_sources(tmp_path / "missing")


def test_make_scores_stored_pixels_and_reports_skips(tmp_path):
    hr_dir = write_images(tmp_path / "hr", 3, size=52)
    (hr_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    p = stimulus_set.plan(4)
    files, choice = stimulus_set.choose_calibration(stimulus_set.list_sources(hr_dir), count=1, seed=0)
    heard = []
    made = stimulus_set.make(p, files, tmp_path / "st", choice, on_skip=heard.append)
    assert len(made.skipped) == 1 and "broken.png" in made.skipped[0] and heard == [f"skipping {made.skipped[0]}"]
    assert len(made.test_sources) == 2 and len(made.calibration_sources) == 1
    assert len(made.stimuli) == 2 * 3 + 2
    for st in made.stimuli:
        from srkeras.data import load_image

        shown = load_image(tmp_path / "st" / stimuli.file_name(st.sha256))
        pair = evaluation.prepare(load_image(hr_dir / st.source), 4)
        s = evaluation.score(shown, pair.hr, 4)
        assert st.ssim == pytest.approx(s["ssim"], abs=1e-12)
        assert (st.psnr is None) == (st.method == "hr")
    means = made.mean_scores(p.method_names)
    assert means["hr"]["psnr"] == float("inf") and means["nearest"]["psnr"] < means["bicubic"]["psnr"]
    with pytest.raises(stimulus_set.TooFewImages, match="at least 3"):
        stimulus_set.require_test_images(made, hr_dir, minimum=3)


def test_models_of_another_scale_are_refused(tmp_path):
    pytest.importorskip("srkeras.inference")
    keras = pytest.importorskip("keras")
    inp = keras.Input((None, None, 3))
    path = tmp_path / "x2.keras"
    keras.Model(inp, keras.layers.UpSampling2D(2)(inp)).save(path)
    with pytest.raises(stimulus_set.ModelError, match="x2, the study is x4"):
        stimulus_set.load_models([stimulus_set.parse_model_spec(str(path))], 4)
    with pytest.raises(stimulus_set.ModelError, match="missing.keras"):
        stimulus_set.load_models([stimulus_set.StudyModel("m", str(Path(tmp_path) / "missing.keras"))], 4)
