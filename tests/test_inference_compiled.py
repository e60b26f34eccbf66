"""The serving artifact of an installed model (srkeras.inference.compiled): outputs identical with and
without it, a stale or corrupt one ignored and rewritten, the Keras model built only when needed; and
TensorFlow imported without Keras (srkeras.inference.lean)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from srkeras.inference import NetworkFacts, ServedModel, compiled, load_generator, store, upscale
from srkeras.inference.sidecar import ModelSidecar
from srkeras.models.layers import PixelShuffle

RNG = np.random.default_rng(0)


def tiny(seed=0, c=3, s=2):
    """conv -> LeakyReLU -> residual conv -> PixelShuffle: srkeras and Keras layers, a skip connection."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, c))
    h = keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(8, 3, padding="same")(inp))
    h = keras.layers.Add()([h, keras.layers.Conv2D(8, 3, padding="same")(h)])
    return keras.Model(inp, PixelShuffle(s)(keras.layers.Conv2D(c * s * s, 3, padding="same")(h)))


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def install(model, name="tiny", pre_pad=2):
    return store.install(name, lambda tmp: model.save(tmp), ModelSidecar.recording(NetworkFacts(scale=2, pre_pad=pre_pad)))


def keras_only(path):
    """The model served from its .keras, as without the artifact."""
    return ServedModel(keras.saving.load_model(str(path), compile=False), NetworkFacts(scale=2, pre_pad=2))


def test_artifact_written_then_served_with_identical_outputs(models):
    path = install(tiny())
    first = load_generator("tiny", precision="float32")  # from the .keras; writes the artifact
    assert first.compiled is None and compiled.artifact_path(path).is_file()
    served = load_generator("tiny", precision="float32")
    assert served.compiled is not None and served._compiled_only()  # no Keras model built
    assert (served.scale, served.pre_pad, served.channels, served.precision) == (2, 2, 3, "float32")  # sidecar facts
    img = RNG.random((37, 29, 3), dtype=np.float32)
    ref = keras_only(path)
    assert np.array_equal(upscale(served, img, tile=0), upscale(ref, img, tile=0))
    assert served._compiled_only()  # an untiled run needs no Keras model
    for opts in ({"tile": 12}, {}):  # trunk and tail tiles: from the Keras model, built now
        assert np.array_equal(upscale(served, img, **opts), upscale(ref, img, **opts)), opts
    assert np.array_equal(upscale(first, img), upscale(ref, img))


def test_keras_model_built_when_needed(models):
    path = install(tiny())
    load_generator("tiny")
    served = load_generator("tiny")
    assert served._compiled_only()
    weights = [w.shape for w in served.model.weights]  # built from the .keras on first use
    assert weights == [w.shape for w in keras.saving.load_model(str(path), compile=False).weights]
    assert not served._compiled_only() and served.split is not None  # split: a view of the Keras model
    img = RNG.random((40, 40, 3), dtype=np.float32)
    assert np.array_equal(upscale(served, img, tile=16), upscale(keras_only(path), img, tile=16))


def test_reinstalled_model_makes_artifact_stale(models):
    path = install(tiny(seed=0))
    load_generator("tiny")
    assert compiled.load(path) is not None
    install(tiny(seed=1))  # same size, new weights
    assert compiled.load(path) is None
    served = load_generator("tiny")  # from the new .keras, rewriting the artifact
    img = RNG.random((20, 20, 3), dtype=np.float32)
    assert np.array_equal(upscale(served, img), upscale(keras_only(path), img))
    again = load_generator("tiny")
    assert again.compiled is not None and np.array_equal(upscale(again, img), upscale(keras_only(path), img))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "meta"])
def test_corrupt_artifact_ignored_and_rewritten(models, damage):
    path = install(tiny())
    load_generator("tiny")
    art = compiled.artifact_path(path)
    data = bytearray(art.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # a byte of the serialised function: the zip CRC catches it
        with zipfile.ZipFile(art) as z:
            info = z.getinfo("function.npy")
        o = info.header_offset  # the local header: 30 bytes, then its own name and extra field
        start = o + 30 + int.from_bytes(data[o + 26 : o + 28], "little") + int.from_bytes(data[o + 28 : o + 30], "little")
        data[start + info.compress_size // 2] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"not a zip file" * 10)
    else:  # a well-formed artifact of other layer sources
        with np.load(art) as z:
            arrays = dict(z)
        meta = json.loads(arrays["meta"].tobytes())
        meta["sources"] = {"models/layers.py": "0" * 64}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        with open(art, "wb") as f:
            np.savez(f, **arrays)
        data = bytearray(art.read_bytes())
    art.write_bytes(bytes(data))
    img = RNG.random((15, 18, 3), dtype=np.float32)
    served = load_generator("tiny")
    if damage == "flip":  # the meta reads: the function fails when first needed, and the Keras model runs
        assert served.compiled is not None and compiled.load(path) is not None
        assert np.array_equal(upscale(served, img), upscale(keras_only(path), img))
        assert "CRC" in served.compiled.failed and not art.exists()  # removed: the next load rewrites it
        served = load_generator("tiny")
    assert compiled.load(path) is not None and served.compiled is None  # from the .keras, the artifact rewritten
    assert np.array_equal(upscale(served, img), upscale(keras_only(path), img))
    again = load_generator("tiny")
    assert np.array_equal(upscale(again, img), upscale(keras_only(path), img))
    assert again.compiled.failed is None and again._compiled_only()


def test_only_installed_float32_models_get_an_artifact(models, tmp_path):
    model = tiny()
    outside = tmp_path / "run" / "model.keras"
    outside.parent.mkdir()
    model.save(outside)
    assert load_generator(outside).compiled is None and not compiled.artifact_path(outside).exists()
    install(model)
    assert load_generator("tiny", dtype=None).compiled is None  # GPU: the model as saved
    assert not compiled.artifact_path(models / "tiny.keras").exists()


def test_lean_tensorflow_imports_tensorflow_without_keras_then_keras_on_demand():
    code = (
        "import sys\n"
        "from srkeras.inference.lean import lean_tensorflow\n"
        "lean_tensorflow()\n"
        "import tensorflow as tf\n"
        "assert not {'keras', 'pandas', 'scipy'} & set(sys.modules), 'imported'\n"
        "import gc\n"
        "assert gc.isenabled() and gc.get_freeze_count() > 0\n"
        "assert float(tf.reduce_sum(tf.ones(3))) == 3.0\n"
        "import keras\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer='ones')])\n"
        "assert float(m(tf.ones((1, 2)))[0, 0]) == 2.0\n"
        "import scipy.ndimage\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "CUDA_VISIBLE_DEVICES": "-1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]


def test_model_the_artifact_cannot_hold_is_traced_once(models, monkeypatch):
    path = install(tiny())
    traces = []

    def untraceable(model, chans):
        traces.append(1)
        raise ValueError("not traceable")

    monkeypatch.setattr(compiled, "_forward", untraceable)
    img = RNG.random((9, 11, 3), dtype=np.float32)
    for _ in range(2):
        served = load_generator("tiny")
        assert served.compiled is None and np.array_equal(upscale(served, img), upscale(keras_only(path), img))
    assert traces == [1] and compiled.declined(path) and compiled.load(path) is None
    install(tiny(seed=1))  # a new model file: tried again
    load_generator("tiny")
    assert traces == [1, 1]


def test_float32_served_model_stays_compiled(models):
    install(tiny())
    load_generator("tiny")
    served = load_generator("tiny")
    assert served.with_precision("float32") is served and served._compiled_only()
