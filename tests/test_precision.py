"""--precision: which precision runs where, which layers stay float32, tiled bfloat16 == untiled bfloat16."""

import keras
import numpy as np
import pytest

from srkeras.inference import NetworkFacts, ServedModel, load_generator, upscale
from srkeras.inference import precision as prec
from srkeras.inference.receptive import analytic_receptive_field
from srkeras.models import build

RNG = np.random.default_rng(0)
NATIVE = prec.bf16_supported()


def _small_rrdbnet():
    return build("rrdbnet", scale=4, num_blocks=2, num_features=32, growth=16)


def test_bfloat16_is_refused_without_the_instructions_and_auto_falls_back(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_flags", lambda: [])
    with pytest.raises(prec.PrecisionError, match="AMX or AVX512-BF16.*use --precision float32"):
        prec.resolve_precision("bfloat16")
    assert prec.resolve_precision("auto", "serve") == "float32"
    assert prec.resolve_precision("bfloat16", device="gpu") == "bfloat16"
    with pytest.raises(prec.PrecisionError, match="unknown precision"):
        prec.resolve_precision("float16")


def test_auto_is_bfloat16_only_for_serving_a_large_model(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    big = _small_rrdbnet()  # 2 RRDBs of 32 features: ~1.4 MFLOP per LR pixel
    tiny = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(12, 3, padding="same")])
    assert prec.resolve_precision("auto", "serve", model=big) == "bfloat16"
    assert prec.resolve_precision("auto", "score", model=big) == "float32"  # evaluation tables, stimuli
    assert prec.resolve_precision("auto", "serve", model=tiny) == "float32"  # 648 FLOP per pixel: casts dominate
    assert prec.resolve_precision("float32", "serve", model=big) == "float32"


def test_float32_layers_are_the_residual_sums_and_the_end_convolutions():
    m = _small_rrdbnet()
    names = prec.float32_layers(m, ("residual", "ends"))
    adds = {layer.name for layer in m.layers if isinstance(layer, keras.layers.Add)}
    assert adds <= names and {"conv_first", "conv_last"} <= names
    assert "conv_body" not in names and "conv_hr" not in names  # the HR convolutions stay bfloat16 (speed)
    assert len(names) == len(adds) + 2  # nothing follows conv_last
    tail = prec.float32_layers(m, ("tail",))
    assert {"up0_nearest", "up0_conv", "conv_hr", "conv_last"} <= tail and "conv_body" not in tail
    with pytest.raises(ValueError, match="unknown float32 layer group"):
        prec.float32_layers(m, ("everything",))


def test_float32_stays_the_same_model_and_bfloat16_keeps_float32_where_asked():
    m = _small_rrdbnet()
    assert prec.as_precision(m, "float32") is m  # exactness: no clone, the same weights and graph
    mb = prec.as_precision(m, "bfloat16")
    dtypes = {layer.name: layer.compute_dtype for layer in mb.layers}
    assert dtypes["conv_first"] == dtypes["conv_last"] == dtypes["long_skip"] == "float32"
    assert dtypes["conv_body"] == dtypes["rrdb0_rdb0_conv1"] == "bfloat16"
    assert prec.precision_of(mb) == "bfloat16" and prec.precision_of(m) == "float32"
    assert ServedModel(mb).precision == "bfloat16"
    x = RNG.random((1, 12, 12, 3), dtype=np.float32)
    a, b = np.asarray(m(x)), np.asarray(mb(x), dtype=np.float32)
    assert 0 < np.abs(a - b).max() < 0.05  # 8 mantissa bits: a small, non-zero error


def test_load_generator_precision(tmp_path, monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_flags", lambda: [])
    path = tmp_path / "m.keras"
    _small_rrdbnet().save(path)
    served = load_generator(str(path), precision="auto")
    assert served.precision == "float32"
    assert served.with_precision("float32") is served and served.with_precision("auto", "score") is served
    with pytest.raises(ValueError, match="AMX or AVX512-BF16"):
        load_generator(str(path), precision="bfloat16")


@pytest.mark.skipif(not NATIVE, reason="this CPU has no bfloat16 instructions")
def test_tiled_bfloat16_equals_untiled_bfloat16(monkeypatch):
    """With margins from the analytic receptive field every kept pixel sees exactly the inputs it
    sees untiled, so the bfloat16 roundings are the same ones: tiled == untiled in bfloat16 too."""
    from srkeras.inference import planning

    monkeypatch.setattr(planning, "BOUND_WASTE", float("inf"))  # keep the analytic margins however wasteful
    m = _small_rrdbnet()
    mb = prec.as_precision(m, "bfloat16")
    probe = ServedModel(m)
    facts = NetworkFacts(scale=4, receptive_field_bound=analytic_receptive_field(m),
                         tail_receptive_field_bound=analytic_receptive_field(probe.split.tail))
    served = ServedModel(mb, facts)
    img = RNG.random((83, 79, 3), dtype=np.float32)  # > 2 margins of 36: several trunk tiles
    full = upscale(served, img, tile=0)
    tiled = upscale(served, img, tile=20)
    assert served.has_measured_field() is False  # no probe ran: the margins are the analytic ones
    assert np.abs(full - tiled).max() <= 1e-6
    f32 = upscale(ServedModel(m, NetworkFacts(**vars(facts))), img, tile=0)
    assert 0 < np.abs(full - f32).max() < 0.05


def test_wasteful_analytic_margins_make_the_probe_run_once():
    """RRDBNet's analytic radius (34 LR px here, 349 for 23 blocks) dwarfs the effective one (the probe:
    8): tiles with it recompute most pixels, so the planner probes once and plans with the effective one."""
    m = _small_rrdbnet()
    facts = NetworkFacts(scale=4, receptive_field_bound=analytic_receptive_field(m),
                         tail_receptive_field_bound=analytic_receptive_field(ServedModel(m).split.tail))
    served = ServedModel(m, facts)
    notes = []
    served.progress = notes.append
    upscale(served, RNG.random((40, 40, 3), dtype=np.float32), tile=0)
    assert not served.has_measured_field()  # untiled: no margins, no probe
    upscale(served, RNG.random((83, 79, 3), dtype=np.float32), tile=20)
    assert served.has_measured_field() and served.receptive_field < facts.receptive_field_bound
    assert any("wasteful" in n for n in notes) and any("probe 48x48" in n for n in notes)


@pytest.mark.skipif(not NATIVE, reason="this CPU has no bfloat16 instructions")
def test_a_bfloat16_model_is_probed_in_float32():
    m = _small_rrdbnet()
    facts = NetworkFacts(scale=4, receptive_field_bound=analytic_receptive_field(m),
                         tail_receptive_field_bound=analytic_receptive_field(ServedModel(m).split.tail))
    served = ServedModel(prec.as_precision(m, "bfloat16"), facts)
    served.measure_fields()
    assert served.facts.receptive_field == ServedModel(m).receptive_field  # the float32 model's effective field
