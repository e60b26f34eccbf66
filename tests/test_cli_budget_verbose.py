"""--max-memory reaches the receptive-field probe from every command that can run one (upscale, evaluate,
prepare_study, pretrained fetch/import), and --verbose exists on every command that imports TensorFlow."""

import keras
import numpy as np
import pytest
from PIL import Image

from pipelines import evaluate, prepare_study, pretrained, study, train, upscale
from srkeras import evaluation_run, stimulus_set
from srkeras.inference import ProbeMemoryError
from srkeras.models.layers import PixelShuffle


@keras.saving.register_keras_serializable(package="tests_probe_budget")
class Reach(keras.layers.Layer):  # a user's own layer: only the probe can tell its reach
    def call(self, x):
        return x * 1.0


@pytest.fixture(scope="module")
def own_model(tmp_path_factory):
    inp = keras.Input((None, None, 3))
    x = Reach()(keras.layers.Conv2D(8, 3, padding="same")(inp))
    path = tmp_path_factory.mktemp("own") / "mine.keras"
    keras.Model(inp, PixelShuffle(2)(keras.layers.Conv2D(12, 3, padding="same")(x))).save(path)
    return path


def test_max_memory_is_parsed_and_checked_by_every_probing_command():
    assert evaluate.spec_of(evaluate.parse_args(["--model", "m.keras", "--max-memory", "1GB"])).max_memory == "1GB"
    assert evaluate.spec_of(evaluate.parse_args(["--model", "m.keras"])).max_memory == "2GB"  # upscale's default
    study_args = ["--name", "s", "--hr-dir", "d", "--db", "sqlite://", "--max-memory", "512MB"]
    assert prepare_study.spec_of(prepare_study._parser().parse_args(study_args)).max_memory == "512MB"
    assert pretrained.parse_args(["fetch", "x", "--max-memory", "4GB"]).max_memory == "4GB"
    assert pretrained.parse_args(["import", "f.pth", "--name", "n", "--max-memory", "3GB"]).max_memory == "3GB"
    assert upscale.parse_args(["a.png", "--model", "m", "--out", "o", "--max-memory", "1GB"]).max_memory == "1GB"
    for parse in (lambda v: evaluate.parse_args(["--max-memory", v]), lambda v: pretrained.parse_args(["fetch", "x", "--max-memory", v]),
                  lambda v: prepare_study._parser().parse_args([*study_args[:-1], v])):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            parse("lots")
        assert e.value.code == 2


def test_pretrained_passes_the_budget_and_refuses_a_probe_it_cannot_hold(monkeypatch, capsys):
    import srkeras.pretrained as lib

    seen = {}

    def import_pth(*a, **k):
        seen.update(k)
        raise ProbeMemoryError("its smallest probe (48x48 LR px) needs about 0.10 GB: raise --max-memory")

    monkeypatch.setattr(lib, "import_pth", import_pth)
    assert pretrained.main(["import", "f.pth", "--name", "n", "--probe", "--max-memory", "1MB"]) == 2
    assert seen["max_memory"] == "1MB" and seen["run_probe"] is True
    assert "raise --max-memory" in capsys.readouterr().err


def test_evaluate_and_study_models_probe_within_the_budget(own_model, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(hr / "a.png")
    spec = evaluation_run.EvaluationSpec(hr_dir=hr, scale=2, methods=(), models=(str(own_model),), max_memory=1000,
                                         progress=False)  # fmt: skip
    with pytest.raises(ProbeMemoryError, match="mine.keras.*48x48"):
        evaluation_run.run(spec)
    lr = np.random.default_rng(1).random((80, 80, 3), dtype=np.float32)
    steps = []
    runners = stimulus_set.load_models([stimulus_set.StudyModel("mine", str(own_model))], 2, max_memory=1000,
                                       progress=steps.append)  # fmt: skip
    with pytest.raises(stimulus_set.ModelError, match="--model .*mine.keras.*raise --max-memory"):
        runners["mine"](lr)
    roomy = stimulus_set.load_models([stimulus_set.StudyModel("mine", str(own_model))], 2, max_memory="1GB",
                                     progress=steps.append)  # fmt: skip
    assert roomy["mine"](lr).shape == (160, 160, 3)
    assert "  probe 48x48 LR px" in steps  # the probe's progress reaches the study's log


def test_verbose_on_every_command_that_imports_tensorflow(monkeypatch):
    import srkeras.inference.quiet as quiet

    calls = []
    monkeypatch.setattr(quiet, "quiet_tensorflow", calls.append)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # what --verbose would default for --workers
    monkeypatch.setattr(study, "print_cost", lambda a: 0)
    assert train.main(["--list-recipes", "--verbose"]) == 0
    assert train.main(["--list-recipes"]) == 0
    assert study.main(["cost", "--backbone", "vgg19", "--verbose"]) == 0
    assert study.main(["cost", "--backbone", "vgg19"]) == 0
    assert calls == [True, False, True, False]
    assert study.parse_args(["backbones", "--train-dir", "t", "--test-dir", "s", "--backbone", "vgg19", "--steps", "1",
                             "--out", "o", "--verbose"]).verbose  # fmt: skip
    monkeypatch.setattr(study, "markdown_table", lambda: "")
    assert study.main(["layers"]) == 0 and len(calls) == 4  # no TensorFlow there: nothing to silence
