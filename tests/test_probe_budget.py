"""The receptive-field probe within the memory budget (srkeras.inference.planning.probe_sizes): its sizes
come from the planner's own estimate, grow with the budget, and a budget too small for the smallest is
refused before anything runs."""

import warnings

import keras
import numpy as np
import pytest

from srkeras import inference
from srkeras.inference import ServedModel, planning, probing
from srkeras.inference.receptive import analytic_receptive_field
from srkeras.models.layers import PixelShuffle


class Odd(keras.layers.Layer):  # a user's own layer: its reach is unknown to the layer graph, so the probe runs
    def call(self, x):
        return x * 1.0


def _model(odd: bool = True):
    """x2, receptive field 23 (3x3 dilated 23) + 1 (3x3) = 24 LR px: past the 48 px probe's reach (its
    centre is 24 px from the border), within the 96 px one's."""
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=23)(inp)
    x = Odd()(x) if odd else x
    x = keras.layers.Conv2D(12, 3, padding="same")(x)
    return keras.Model(inp, PixelShuffle(2)(x))


def _budget_for(served, size):
    """The smallest budget whose activation share holds the probe of ``size``."""
    return int(planning.probe_bytes(served, size) / planning.ACTIVATION_SHARE) + 1


def test_probe_peak_is_the_planners_estimate_of_one_untiled_window():
    served = ServedModel(_model())
    for p in probing.PROBE_SIZES:
        assert served.split is not None  # trunk + tail: the window is both stages' tile
        window = planning.TilePlan(tile=p, overlap=0, batch_size=1, exact=True, tail_tile=p)
        kept = (2 * p) ** 2 * 4.0 * (served.costs.out_channels + 1)  # base output + difference map, HR px
        assert planning.probe_bytes(served, p) == pytest.approx(planning.plan_bytes(served, (p, p), window) + kept)
    # Per-pixel costs: doubling the probe edge quadruples its peak (up to the output chunk term).
    b = [planning.probe_bytes(served, p) for p in probing.PROBE_SIZES]
    assert all(3.5 < q / p <= 4.0 for p, q in zip(b, b[1:]))


def test_probe_sizes_grow_with_the_budget():
    served = ServedModel(_model())
    sizes = probing.PROBE_SIZES
    for i, p in enumerate(sizes):
        budget = _budget_for(served, p)
        assert planning.probe_sizes(served, budget) == sizes[: i + 1]
        if i:  # just short of a size's need: the sizes below it
            assert planning.probe_sizes(served, budget - 2) == sizes[:i]
    assert planning.probe_sizes(served, "64GB") == sizes


def test_a_budget_too_small_for_the_smallest_probe_is_refused_before_work(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(probing, "measure_receptive_field", refuse)
    served = ServedModel(_model())
    need = _budget_for(served, probing.PROBE_SIZES[0])
    image = np.random.default_rng(0).random((80, 80, 3), dtype=np.float32)  # larger than a thumbnail: tiles
    with pytest.raises(inference.ProbeMemoryError, match=r"48x48 LR px.*raise --max-memory"):
        inference.upscale(served, image, max_memory=need - 2)
    # A model whose field is known (here: a sidecar's analytic bounds) needs no probe: the budget only sizes tiles.
    known = ServedModel(_model(), inference.NetworkFacts(receptive_field_bound=24, tail_receptive_field_bound=1))
    assert not known.probe_pending()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tight" budget
        assert planning.plan(known, (80, 80), max_memory=need - 2).overlap == 26


def test_the_probe_runs_only_the_sizes_that_fit_and_says_so():
    expected = analytic_receptive_field(_model(odd=False))
    assert expected == 24
    steps = []
    roomy = ServedModel(_model())
    roomy.progress = steps.append
    planning.limit_probe(roomy, _budget_for(roomy, 96))
    assert abs(roomy.receptive_field - expected) <= 1  # the effective field, within a px of the architecture's
    assert [s for s in steps if s.startswith("  probe")] == ["  probe 48x48 LR px", "  probe 96x96 LR px"]
    assert any("up to 96x96" in s for s in steps)

    tight = ServedModel(_model())  # only the 48 px probe fits: it cannot see the field's edge
    planning.limit_probe(tight, _budget_for(tight, 48))
    with pytest.warns(UserWarning, match="past the largest impulse probe the memory budget allows"):
        assert tight.receptive_field is None


def test_sidecar_probe_within_the_budget(monkeypatch):
    from srkeras.pretrained.fetching import measure_for_sidecar

    m = _model()
    with pytest.raises(inference.ProbeMemoryError):  # --probe asked for: refused
        measure_for_sidecar(m, run_probe=True, max_memory=1000)

    def refuse(*a, **k):
        raise AssertionError("probed")

    monkeypatch.setattr(probing, "measure_receptive_field", refuse)
    got = measure_for_sidecar(m, run_probe=None, max_memory=1000)  # automatic: recorded, serving probes later
    assert got["scale_probed"] == 2 and "ProbeMemoryError" in got["probe_error"] and "receptive_field" not in got
