"""The analytic receptive field (srkeras.inference.receptive): hand-computed radii, and an upper bound
on the impulse probe for every catalogue architecture; fetch and import need no probe."""

import keras
import numpy as np
import pytest

from srkeras.inference import ServedModel, probing
from srkeras.inference.receptive import analytic_receptive_field
from srkeras.models import build
from srkeras.models.layers import PixelShuffle


def _stack(*layers, c=3):
    inp = keras.Input((None, None, c))
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x)


def test_hand_computed_radii():
    conv = keras.layers.Conv2D
    assert analytic_receptive_field(_stack(conv(8, 5, padding="same"), conv(8, 3, padding="same"), conv(12, 3, padding="same"),
                                           PixelShuffle(2))) == 2 + 1 + 1  # fmt: skip
    assert analytic_receptive_field(_stack(conv(8, 3, padding="same", dilation_rate=3))) == 3  # (3 - 1) * 3 / 2
    # At x2 after the upsampling, two 3x3 convolutions reach 2 HR px = 1 LR px; nearest reaches 0.
    up = _stack(conv(8, 3, padding="same"), keras.layers.UpSampling2D(2), conv(8, 3, padding="same"),
                conv(3, 3, padding="same"))  # fmt: skip
    assert analytic_receptive_field(up) == 1 + 1
    bilinear = _stack(keras.layers.UpSampling2D(2, interpolation="bilinear"), conv(3, 3, padding="same"))
    assert analytic_receptive_field(bilinear) == 1 + 1
    # Residual branches: the longest path counts.
    inp = keras.Input((None, None, 3))
    a = conv(3, 7, padding="same")(inp)
    b = conv(3, 3, padding="same")(conv(3, 3, padding="same")(inp))
    assert analytic_receptive_field(keras.Model(inp, keras.layers.Add()([a, b, inp]))) == 3


def test_unknown_layers_leave_it_to_the_probe():
    class Blur(keras.layers.Layer):  # a custom layer: its reach is not known to the walk
        def call(self, x):
            return x

    assert analytic_receptive_field(_stack(Blur(), keras.layers.Conv2D(3, 3, padding="same"))) is None
    assert analytic_receptive_field(_stack(keras.layers.GlobalAveragePooling2D(keepdims=True))) is None


@pytest.mark.parametrize(
    "arch, options",
    [
        ("rrdbnet", {"scale": 4, "num_blocks": 2, "num_features": 32, "growth": 16}),  # RealESRGAN_x4plus, smaller
        ("rrdbnet", {"scale": 2, "num_blocks": 1, "num_features": 16, "growth": 8, "pixel_unshuffle": True}),
        ("srvgg_compact", {"scale": 4, "num_conv": 6}),  # realesr_animevideov3, smaller
        ("rdn", {"scale": 4, "C": 1, "D": 3, "G": 16, "G0": 16, "pixel_range": 255.0}),  # rdn_div2k_x4, smaller
        ("rrdn", {"scale": 2, "C": 2, "D": 2, "G": 8, "G0": 16, "T": 2}),  # rrdn_gans, smaller
        ("msrresnet", {"scale": 4, "num_feat": 16, "num_block": 2}),  # bilinear input residual
    ],
)
def test_analytic_bound_covers_the_probe_for_each_catalogue_architecture(arch, options):
    m = build(arch, **options)
    served = ServedModel(m)
    bound = analytic_receptive_field(m)
    probed = served.receptive_field  # the impulse probe, at RF_TOL
    assert bound is not None and probed is not None and probed <= bound, (bound, probed)
    if served.split is not None:
        tail_bound = analytic_receptive_field(served.split.tail)
        assert served.tail_receptive_field <= tail_bound <= 4


def test_full_rrdbnet_bound_is_the_convolution_count():
    # conv_first + 23 x 3 x 5 dense convolutions + conv_body: 347 LR px; the x4 tail adds 2.
    assert analytic_receptive_field(build("rrdbnet", scale=4)) == 1 + 23 * 15 + 1 + 2


def test_sidecar_measurement_takes_the_bounds_without_a_probe(monkeypatch, tmp_path):
    from srkeras.pretrained.fetching import measure_for_sidecar

    def refuse(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(probing, "measure_receptive_field", refuse)
    m = build("rrdbnet", scale=4, num_blocks=1, num_features=16, growth=8)
    steps = []
    got = measure_for_sidecar(m, run_probe=None, progress=steps.append)
    assert got == {"scale_probed": 4, "receptive_field_bound": 1 + 15 + 1 + 2, "tail_receptive_field_bound": 2}
    assert steps == ["receptive field from the layer graph"]
    m.save(tmp_path / "m.keras")  # the model is untouched: it still saves (the split was made on a clone)


def test_a_model_of_unknown_reach_is_probed_with_progress():
    from srkeras.pretrained.fetching import measure_for_sidecar

    class Odd(keras.layers.Layer):
        def call(self, x):
            return x * 1.0

    m = _stack(keras.layers.Conv2D(8, 3, padding="same"), Odd(), keras.layers.Conv2D(12, 3, padding="same"), PixelShuffle(2))
    steps = []
    got = measure_for_sidecar(m, run_probe=None, progress=steps.append)
    assert got["receptive_field"] == 2 and "receptive_field_bound" not in got
    assert any("probe 48x48" in s for s in steps)
    x = np.zeros((1, 8, 8, 3), np.float32)
    assert np.asarray(m(x)).shape == (1, 16, 16, 3)


@pytest.mark.parametrize("arch, options, whole", [
    ("realcugan", {}, True),  # squeeze-excitation gates average the whole image
    ("waifu2x_cunet", {}, True),
    ("omnisr", {"num_feat": 16, "res_num": 1}, True),  # channel attention pools the whole image
    ("rcan", {"n_resgroups": 1, "n_resblocks": 1, "n_feats": 16}, True),  # RCAB channel attention (nested groups)
    ("msrresnet", {"num_feat": 8, "num_block": 1}, False),
    ("rrdbnet", {"num_blocks": 1, "num_features": 16, "growth": 8}, False),
    ("srvgg_compact", {"num_conv": 2}, False),
])
def test_whole_image_models_are_known_global_without_a_probe(monkeypatch, arch, options, whole):
    """Global pooling makes every output pixel depend on the whole input: the graph says so (the probe
    took ~10 min to say it for DAT-light), the sidecar records it and serving treats the field as global."""
    from srkeras.inference.receptive import reads_whole_image
    from srkeras.inference.sidecar import ModelSidecar
    from srkeras.pretrained.fetching import measure_for_sidecar

    scale = 2 if arch != "omnisr" else 4
    m = build(arch, scale=scale, **options)
    assert reads_whole_image(m) is whole
    if not whole:
        return

    def refuse(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(probing, "measure_receptive_field", refuse)
    got = measure_for_sidecar(m, run_probe=None)
    assert got["whole_image"] is True and "receptive_field" not in got
    facts = ModelSidecar(**got).network_facts()
    assert facts.receptive_field is None and facts.tail_receptive_field is None  # global, not unmeasured
    assert ServedModel(m).receptive_field is None  # a bare model: the graph, not the probe
