"""The served model, its JSON sidecar (both formats of the previous version load), the model store,
memory budgets and SR PNGs."""

import io
import json

import keras
import numpy as np
import pytest

from srkeras.files import sha256_file
from srkeras.inference import (
    NetworkFacts,
    ServedModel,
    find_model,
    list_models,
    load_generator,
    parse_memory_budget,
    probing,
    serve,
    store,
    upscale,
    upscale_to_png,
)
from srkeras.inference.served import UNMEASURED
from srkeras.inference.sidecar import SIDECAR_VERSION, ModelSidecar
from srkeras.models.layers import PixelShuffle

RNG = np.random.default_rng(0)


def tiny(c=3, s=2):
    inp = keras.Input((None, None, c))
    return keras.Model(inp, PixelShuffle(s)(keras.layers.Conv2D(c * s * s, 3, padding="same")(inp)))


# Literal sidecars as the previous version wrote them (sha256 filled in per test).
OLD_EXPORT = """{
  "model_sha256": "%s",
  "pad_mode": "reflect",
  "pre_pad": 3,
  "receptive_field": 7,
  "rf_tol": 1e-05,
  "scale": 2
}"""  # srkeras.inference.sidecar.write_sidecar (pipelines.export --format keras): no version key
OLD_INSTALL = """{
  "arch": "srvgg_compact",
  "input_range": [0.0, 1.0],
  "licence": "user-supplied checkpoint: see its publisher's licence",
  "model_sha256": "%s",
  "name": "tiny",
  "options": {"num_conv": 1, "num_feat": 8},
  "output_range": [0.0, 1.0],
  "pad_mode": null,
  "params": 1234,
  "pre_pad": 10,
  "receptive_field": 5,
  "rf_tol": 1e-05,
  "scale": 2,
  "scale_probed": 2,
  "sidecar_version": 1,
  "source": {"file": "/x/tiny.pth", "format": "pth", "sha256": "abc"},
  "tail_receptive_field": null,
  "unmapped_keys": []
}"""  # srkeras.pretrained.store.install (fetch / import_pth)


@pytest.mark.parametrize("text, version", [(OLD_EXPORT, 0), (OLD_INSTALL, 1)])
def test_sidecars_of_the_previous_version_load(tmp_path, monkeypatch, text, version):
    path = tmp_path / "m.keras"
    tiny().save(path)
    (tmp_path / "m.json").write_text(text % sha256_file(path))
    side = ModelSidecar.read(path)
    assert side.version == version and side.scale == 2 and side.receptive_field in (7, 5)
    monkeypatch.setattr(probing, "measure_receptive_field", lambda *a, **k: pytest.fail("probed"))
    served = load_generator(path)
    assert served.pre_pad == side.pre_pad and served.scale == 2 and served.receptive_field == side.receptive_field
    if version == 1:
        assert side.arch == "srvgg_compact" and side.params == 1234 and side.about["source"]["sha256"] == "abc"
        assert served.facts.tail_receptive_field is UNMEASURED  # null: measured at first use
        # Written again, the provenance keys come back as they were (plus nothing but the version).
        side.write(path)
        assert json.loads((tmp_path / "m.json").read_text()) == {
            k: v for k, v in json.loads(text % sha256_file(path)).items() if v is not None
        }


def test_sidecar_of_another_tolerance_or_newer_version_is_not_believed(tmp_path):
    path = tmp_path / "m.keras"
    tiny().save(path)
    sha = sha256_file(path)
    (tmp_path / "m.json").write_text(json.dumps({"model_sha256": sha, "receptive_field": 4, "rf_tol": 1e-3, "pre_pad": 2}))
    facts = ModelSidecar.read(path).network_facts()
    assert facts.receptive_field is UNMEASURED and facts.pre_pad == 2
    (tmp_path / "m.json").write_text(json.dumps({"model_sha256": sha, "sidecar_version": SIDECAR_VERSION + 1}))
    assert ModelSidecar.read(path) is None
    (tmp_path / "m.json").write_text(json.dumps({"model_sha256": sha, "pre_pad": 2, "pad_mode": "zeros"}))
    with pytest.raises(ValueError, match="pad_mode 'zeros'"):
        load_generator(path)


def test_served_model_measures_once_and_clones_keep_the_facts(monkeypatch):
    m = tiny()
    served = ServedModel(m, NetworkFacts(pre_pad=2))
    assert served.scale == 2 and served.receptive_field == 1 and served.split is None
    assert served.margins().trunk == 3 and served.margins(overlap=5).trunk == 5
    monkeypatch.setattr(probing, "measure_receptive_field", lambda *a, **k: pytest.fail("probed twice"))
    assert served.receptive_field == 1
    clone = served.rebuilt(lambda model: model)
    assert clone.pre_pad == 2 and clone.receptive_field == 1 and clone.plans == {}
    assert serve(served) is served and serve(m) is not served  # a bare model is served on its own (no pre-pad)
    assert serve(m).pre_pad == 0


def test_exported_keras_carries_its_facts_in_a_current_sidecar(tmp_path):
    from srkeras.inference.export import export_keras
    from srkeras.models import build

    served = ServedModel(build("espcn", scale=2), NetworkFacts(pre_pad=3))
    assert served.receptive_field == 4
    path = export_keras(served, tmp_path / "e.keras")
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["sidecar_version"] == SIDECAR_VERSION and data["pre_pad"] == 3 and data["receptive_field"] == 4
    assert load_generator(path).pre_pad == 3
    plain = export_keras(build("espcn", scale=2), tmp_path / "plain.keras")  # nothing a plain load would not find out
    assert plain.is_file() and not (tmp_path / "plain.json").exists()


def test_store_installs_atomically_and_finds_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKERAS_MODEL_DIR", str(tmp_path / "models"))
    m = tiny()
    path = store.install("tiny", lambda tmp: m.save(tmp), ModelSidecar(scale=2, pre_pad=0, arch="x"))
    assert path == tmp_path / "models" / "tiny.keras" == find_model("tiny")
    side = ModelSidecar.read(path)
    assert side.name == "tiny" and side.arch == "x" and side.model_sha256 == sha256_file(path)
    (tmp_path / "models" / "run").mkdir()
    m.save(tmp_path / "models" / "run" / "model.keras")

    def fail(tmp):
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.install("broken", fail, ModelSidecar())
    assert list_models() == [tmp_path / "models" / "run", path]  # no temporary left, no half model
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["run", "tiny.json", "tiny.keras"]


@pytest.mark.parametrize("text, n", [("2GB", 2_000_000_000), (" 512MiB", 512 * 1024**2), (3e6, 3_000_000)])
def test_memory_budget(text, n):
    assert parse_memory_budget(text) == n


@pytest.mark.parametrize("text, why", [("abc", "'abc' is not a memory size"), ("0", "'0' is not more than 0 bytes"),
                                       ("-1GB", "is not more than 0 bytes")])  # fmt: skip
def test_memory_budget_refused(text, why):
    with pytest.raises(ValueError, match=why):
        parse_memory_budget(text)


def test_upscale_to_png_streams_what_upscale_returns():
    from srkeras.data.png16 import decode

    served = ServedModel(tiny())
    px, alpha = RNG.random((23, 19, 3), dtype=np.float32), RNG.random((23, 19), dtype=np.float32)
    buf, seen = io.BytesIO(), []
    upscale_to_png(served, px, buf, alpha=alpha, bit_depth=16, icc_profile=b"icc", tile=0,
                   on_band=lambda r0, band: seen.append((r0, band.shape)))  # fmt: skip
    d = decode(buf.getvalue())
    assert d["depth"] == 16 and d["samples"].shape == (46, 38, 4) and d["icc"] == b"icc"
    from srkeras.data import quantize

    assert np.array_equal(d["samples"][..., :3], quantize(upscale(served, px, tile=0), 16))
    assert seen == [(0, (46, 38, 3))]
