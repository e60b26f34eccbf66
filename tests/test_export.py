"""Exports reload without srkeras (fresh interpreter, srkeras import blocked) and match the model."""

import os
import subprocess
import sys

import numpy as np
import pytest

from pipelines.export import main
from srkeras.models import build

BLOCKED = "import sys; sys.modules['srkeras'] = None  # any 'import srkeras' now fails\n"
CHECK = BLOCKED + """
import numpy as np, tensorflow as tf
x = np.load(r'{d}/x.npy'); want = np.load(r'{d}/y.npy')
try:
    import srkeras
    raise SystemExit('srkeras importable')
except ImportError:
    pass
m = tf.saved_model.load(r'{d}/out/saved_model')
sig = m.signatures['serving_default']
y = sig(lr=tf.constant(x))['sr'].numpy()
y2 = sig(lr=tf.constant(x[:, :9, :7]))['sr'].numpy()  # another H, W: dynamic signature
print('SM|%r|%s|%d' % (float(np.abs(y - want).max()), tuple(y2.shape), int(m.scale.numpy())))
"""
TFLITE = BLOCKED + """
import numpy as np, tensorflow as tf
x = np.load(r'{d}/x.npy'); want = np.load(r'{d}/y.npy')
it = tf.lite.Interpreter(r'{d}/out/model.tflite')
i = it.get_input_details()[0]
it.resize_tensor_input(i['index'], list(x.shape)); it.allocate_tensors()
it.set_tensor(i['index'], x); it.invoke()
print('TFL', float(np.abs(it.get_tensor(it.get_output_details()[0]['index']) - want).max()))
"""


def _fresh(code, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    m = build("espcn", scale=3, channels=1)  # uses the srkeras PixelShuffle layer
    m.save(d / "espcn.keras")
    x = np.random.default_rng(0).random((2, 13, 17, 1), dtype=np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", np.asarray(m(x)))
    return d


def test_savedmodel_runs_without_srkeras(saved):
    assert main(["--model", str(saved / "espcn.keras"), "--out", str(saved / "out"), "--format", "savedmodel"]) == 0
    line = _fresh(CHECK.format(d=saved), cwd=saved).strip().splitlines()[-1]
    _, diff, shape, scale = line.split("|")
    assert float(diff) < 1e-5 and shape == "(2, 27, 21, 1)" and scale == "3"


def test_tflite_runs_without_srkeras(saved):
    assert main(["--model", str(saved / "espcn.keras"), "--out", str(saved / "out"), "--format", "tflite"]) == 0
    line = _fresh(TFLITE.format(d=saved), cwd=saved).strip().splitlines()[-1]
    assert float(line.split()[1]) < 1e-4


KERAS = BLOCKED + """
import numpy as np, keras
for name in {names!r}:
    m = keras.saving.load_model(r'{d}/' + name + '/model.keras')
    x = np.load(r'{d}/' + name + '_x.npy'); want = np.load(r'{d}/' + name + '_y.npy')
    print('K', name, float(np.abs(np.asarray(m(x)) - want).max()))
"""


def test_keras_export_runs_without_srkeras(saved):
    """PixelShuffle models (ESPCN, SRResNet with BatchNorm) and RRDBNet (srkeras initializer) export
    as .keras files of built-in layers that plain Keras loads; the outputs are bit-exact."""
    from srkeras.inference import load_generator

    assert main(["--model", str(saved / "espcn.keras"), "--out", str(saved / "espcn"), "--format", "keras"]) == 0
    np.save(saved / "espcn_x.npy", np.load(saved / "x.npy"))
    np.save(saved / "espcn_y.npy", np.load(saved / "y.npy"))
    for name, m in [("srresnet", build("srresnet", scale=4, num_blocks=2)),
                    ("rrdbnet", build("rrdbnet", scale=2, num_blocks=1, num_features=16, growth=8))]:  # fmt: skip
        x = np.random.default_rng(1).random((1, 11, 14, 3), dtype=np.float32)
        m.save(saved / f"{name}.keras")
        np.save(saved / f"{name}_x.npy", x)
        np.save(saved / f"{name}_y.npy", np.asarray(m(x)))
        assert main(["--model", str(saved / f"{name}.keras"), "--out", str(saved / name), "--format", "keras"]) == 0
    out = _fresh(KERAS.format(d=saved, names=["espcn", "srresnet", "rrdbnet"]), cwd=saved)
    diffs = {line.split()[1]: float(line.split()[2]) for line in out.splitlines() if line.startswith("K ")}
    assert diffs == {"espcn": 0.0, "srresnet": 0.0, "rrdbnet": 0.0}
    # ... and they still load as srkeras generators
    m = load_generator(saved / "espcn" / "model.keras").model
    assert np.abs(np.asarray(m(np.load(saved / "x.npy"))) - np.load(saved / "y.npy")).max() == 0


def test_keras_export_of_bicubic_model_says_it_needs_srkeras(tmp_path):
    from srkeras.inference import load_generator
    from srkeras.inference.export import export_keras

    m = build("srcnn", scale=3, channels=1)  # BicubicUpsample: no exact built-in twin
    with pytest.warns(UserWarning, match="BicubicUpsample.*needs srkeras to load"):
        path = export_keras(m, tmp_path / "srcnn.keras")
    x = np.random.default_rng(0).random((1, 9, 8, 1), dtype=np.float32)
    assert np.abs(np.asarray(load_generator(path).model(x)) - np.asarray(m(x))).max() < 1e-6


def test_savedmodel_loads_back_as_generator(saved):
    from srkeras.inference import load_generator, model_scale, upscale

    main(["--model", str(saved / "espcn.keras"), "--out", str(saved / "out2"), "--format", "savedmodel"])
    m = load_generator(saved / "out2" / "saved_model")
    assert model_scale(m) == 3
    img = np.random.default_rng(2).random((20, 22, 3), dtype=np.float32)
    ref = load_generator(saved / "espcn.keras")
    assert np.abs(upscale(m, img) - upscale(ref, img)).max() < 1e-5


def test_an_existing_export_is_replaced_only_with_overwrite(saved, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "model.keras").write_bytes(b"an earlier export")
    args = ["--model", str(saved / "espcn.keras"), "--out", str(out), "--format", "keras"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"error: {out / 'model.keras'}: exists; pass --overwrite to replace it" in err and "Traceback" not in err
    assert (out / "model.keras").read_bytes() == b"an earlier export"
    assert main([*args, "--overwrite"]) == 0 and (out / "model.keras").read_bytes() != b"an earlier export"


def test_unwritable_out_is_refused_before_loading_and_a_full_disk_names_the_path(saved, tmp_path, monkeypatch, capsys):
    import errno

    import keras

    from srkeras import files

    (tmp_path / "file").write_text("x")
    assert main(["--model", "no-such-model", "--out", str(tmp_path / "file"), "--format", "keras"]) == 2
    assert f"error: --out {tmp_path / 'file'}: is not a folder" in capsys.readouterr().err

    def read_only(path):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    with monkeypatch.context() as m:
        m.setattr(files, "_new_temp_file", read_only)  # what a read-only folder does (tests run as root)
        assert main(["--model", "no-such-model", "--out", str(tmp_path), "--format", "tflite"]) == 2
    assert f"error: --out {tmp_path}: cannot write in this folder (Read-only file system)" in capsys.readouterr().err

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    assert main(["--model", str(saved / "espcn.keras"), "--out", str(tmp_path / "o"), "--format", "keras"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write {tmp_path / 'o' / 'model.keras'}: no space left on the device\n", err
    assert not list((tmp_path / "o").iterdir())
