"""A generator as it is served: the network plus everything serving knows about it, in one object.

:class:`ServedModel` carries the Keras model and, as typed fields, what the tiled path needs:
scale, the original runtime's reflect pre-padding ``pre_pad`` (LR px; Real-ESRGAN's ncnn runtime:
10), the LR size multiple a PixelUnshuffle input needs, the receptive field of the whole model and
of its tail (:mod:`srkeras.inference.probing`), the tile margins they give, the trunk/tail split
(:mod:`srkeras.inference.split`) with its per-pixel costs, the traced runners, and the tile plans
already searched (:mod:`srkeras.inference.planning`). Each is measured once, when first needed.

:class:`NetworkFacts` are the facts that hold for the network whatever its dtype or layer spelling:
the JSON sidecar records them (:mod:`srkeras.inference.sidecar`) so that loading a model need not
probe, and a rewritten clone (float32, bfloat16, built-in layers) keeps them (:meth:`ServedModel.rebuilt`).

:func:`srkeras.inference.load_generator` returns a ServedModel; an installed model served in float32
comes with its serving artifact (``compiled``, :mod:`srkeras.inference.compiled`), which runs the
whole model and knows its channels, so the Keras model is built only when something else needs it. Every public function also takes a
bare ``keras.Model``: :func:`serve` wraps it once and keeps the wrapper in a weak-keyed map, so a
model upscaled image after image (validation during training) is measured and traced once. That
wrapper refers to its model weakly (the map's value must not keep its key alive), so a long-running
app that loads models one after another gets each one's memory back once it drops the model.

Pre-padding: the whole LR image is reflect-padded once (:func:`reflect_pad`), upscaled as usual
(tiled or not; tiling a padded image is exact like any other), and ``pre_pad * scale`` HR pixels
are cropped from every side (:mod:`srkeras.inference.running`).
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
import weakref
from dataclasses import InitVar, dataclass, field
from functools import cached_property

import numpy as np

from srkeras.inference import probing
from srkeras.inference.runtime import input_channels, model_channels, run_model, traced_runner

DEFAULT_RADIUS = 32  # margin basis (LR px) when a receptive field is global


class Unmeasured(enum.Enum):
    """Type of :data:`UNMEASURED`: a receptive field not measured yet (``None`` means global)."""

    UNMEASURED = "unmeasured"


UNMEASURED = Unmeasured.UNMEASURED


@dataclass(kw_only=True)
class NetworkFacts:
    """What holds for a network whatever its dtype or layer spelling (module docstring)."""

    scale: int | None = None  # None: not measured yet
    receptive_field: int | None | Unmeasured = UNMEASURED  # LR px; None: global (at probing.RF_TOL)
    tail_receptive_field: int | None | Unmeasured = UNMEASURED  # of the tail on the trunk's features
    pre_pad: int = 0  # LR px of reflect padding around the whole image (the original runtime's)
    receptive_field_bound: int | None = None  # analytic radius, LR px (srkeras.inference.receptive); None: unknown
    tail_receptive_field_bound: int | None = None  # the tail's, when split


@dataclass(frozen=True)
class Margins:
    """Tile margins (LR px) a model needs: the trunk's covers the whole model's receptive field."""

    trunk: int
    tail: int  # 0 when the model runs whole
    exact: bool  # False when a receptive field is global: tiled output then differs from untiled
    bound: bool = False  # from the analytic bounds (the probe has not run): wider than needed for deep models


@dataclass(eq=False)
class ServedModel:
    """A Keras generator and what serving knows about it (module docstring); facts fill in lazily."""

    network: InitVar[object]  # the keras.Model (read it as .model); None with ``compiled``: built when first read
    facts: NetworkFacts = field(default_factory=NetworkFacts)
    borrowed: InitVar[bool] = False  # True: refer to the model weakly (see serve)
    plans: dict = field(default_factory=dict, repr=False)  # TilePlan by request, filled by planning.plan
    progress: object = field(default=None, repr=False)  # callable(message) for steps that take a while (probes)
    #: LR sizes the impulse probe may use: those whose peak fits the memory budget, set by
    #: :func:`srkeras.inference.planning.limit_probe` before a probe runs
    probe_sizes: tuple = field(default=probing.PROBE_SIZES, repr=False)
    # the float32 serving artifact (srkeras.inference.compiled.Compiled): runner, channels and size multiple
    # without the Keras model, whose load_model() is called only when something needs the model
    compiled: object = field(default=None, repr=False)
    _ref: weakref.ref | None = field(init=False, repr=False)
    _owned: object = field(init=False, repr=False)  # the model when this object owns it, else None

    def __post_init__(self, network, borrowed: bool):
        if network is None and self.compiled is None:
            raise ValueError("ServedModel needs a model or a compiled artifact")
        self._ref = None if network is None else weakref.ref(network)
        self._owned = None if borrowed else network

    @property
    def model(self):
        """The Keras model served."""
        if self._ref is None:  # served from its compiled artifact until now
            self._owned = self.compiled.load_model()
            self._ref = weakref.ref(self._owned)
        model = self._ref()
        if model is None:
            raise ReferenceError("the model of this ServedModel was released; keep a reference to it or use ServedModel(model)")
        return model

    def rebuilt(self, transform) -> ServedModel:
        """A ServedModel of ``transform(model)`` (a rewrite of the same network) keeping its :class:`NetworkFacts`."""
        new = ServedModel(transform(self.model), dataclasses.replace(self.facts))
        new.progress, new.probe_sizes = self.progress, self.probe_sizes
        return new

    def note(self, message: str) -> None:
        """Tell :attr:`progress` (if any) about a step that may take a while."""
        if callable(self.progress):
            self.progress(message)

    @property
    def pre_pad(self) -> int:
        return self.facts.pre_pad

    def _compiled_only(self) -> bool:
        """Whether the Keras model is not built: what the compiled artifact knows is read from it."""
        return self._ref is None

    @cached_property
    def precision(self) -> str:
        """The compute precision: "bfloat16" when any layer computes in it, else "float32"
        (:mod:`srkeras.inference.precision`)."""
        if self._compiled_only():
            return self.compiled.precision
        from srkeras.inference.precision import precision_of

        return precision_of(self.model)

    def with_precision(self, precision: str, purpose: str = "serve", device: str = "cpu") -> ServedModel:
        """This model computing in ``precision`` ("float32", "bfloat16" or "auto" for ``purpose``);
        itself when it already does. Raises PrecisionError (a ValueError) for bfloat16 where it is not native."""
        from srkeras.inference.precision import as_precision, resolve_precision

        want = resolve_precision(precision, purpose, device)  # float32 here is final: the model can only lower auto
        if want == "bfloat16" and precision == "auto":
            want = resolve_precision(precision, purpose, device, self.model)
        return self if want == self.precision else self.rebuilt(lambda m: as_precision(m, want))

    @cached_property
    def channels(self) -> int:
        """Channels of the (first) input: 1 for a Y-only model, 3 for RGB."""
        return self.compiled.channels if self._compiled_only() else model_channels(self.model)

    @cached_property
    def runner(self):
        """The traced inference function of the whole model (:func:`~srkeras.inference.runtime.traced_runner`),
        or the compiled artifact's (the same computation, no Keras model needed)."""
        run = self.compiled.runner() if self.compiled is not None else None
        return run if run is not None else traced_runner(self.model)  # None: a corrupt artifact

    @property
    def scale(self) -> int:
        if self.facts.scale is None:
            self.facts.scale = probing.measure_scale(self.runner, sum(input_channels(self.model)))
        return self.facts.scale

    @property
    def receptive_field(self) -> int | None:
        """Receptive-field radius (LR px) of the whole model; None if global."""
        if self.facts.receptive_field is UNMEASURED:
            from srkeras.inference.receptive import reads_whole_image

            # global pooling: global, known from the graph (the probe would take minutes to say so)
            self.facts.receptive_field = None if reads_whole_image(self.model) else self.measure_receptive_field()
        return self.facts.receptive_field

    def measure_receptive_field(self, tol: float = probing.RF_TOL, max_probe: int = probing.PROBE_SIZES[-1]) -> int | None:
        """The impulse probe of the whole model at ``tol`` and ``max_probe`` (not kept)."""
        c = self.channels
        self.note(f"measuring the receptive field (impulse probe up to {self._largest_probe(max_probe)} LR px; once per model)")
        rf = probing.measure_receptive_field(self.runner, lambda p: probing.impulse_bases(c, p), self.scale, tol, max_probe,
                                             progress=self.progress, sizes=self.probe_sizes)  # fmt: skip
        self._warn_if_cut(rf, max_probe)
        return rf

    def _largest_probe(self, max_probe: int = probing.PROBE_SIZES[-1]) -> str:
        p = max([q for q in self.probe_sizes if q <= max_probe] or [max_probe])
        return f"{p}x{p}"

    def _warn_if_cut(self, rf, max_probe: int = probing.PROBE_SIZES[-1]) -> None:
        """Warn when a probe found no edge because the memory budget cut its sizes short."""
        cut = [q for q in probing.PROBE_SIZES if q <= max_probe and q not in self.probe_sizes]
        if rf is None and cut:
            warnings.warn(f"the receptive field reaches past the largest impulse probe the memory budget allows "
                          f"({self._largest_probe(max_probe)} LR px); treated as global: raise --max-memory to "
                          "measure it", stacklevel=4)  # fmt: skip

    def probe_pending(self) -> bool:
        """Whether finding the tile margins (:meth:`margins` without ``overlap``) would run the impulse probe."""
        if self.bound_margins() is not None:
            return False
        if self.facts.receptive_field is UNMEASURED:
            from srkeras.inference.receptive import reads_whole_image

            if not reads_whole_image(self.model):
                return True
        return self.split is not None and self.facts.tail_receptive_field is UNMEASURED

    @cached_property
    def size_multiple(self) -> int:
        """LR sizes the model accepts are multiples of this (a PixelUnshuffle input: 2 or 4; else 1)."""
        if self._compiled_only():
            return self.compiled.size_multiple
        m = 1
        for layer in getattr(self.model, "layers", []):
            if type(layer).__name__ == "PixelUnshuffle":
                m *= int(getattr(layer, "scale", 1))
        return m

    @cached_property
    def split(self):
        """The trunk/tail :class:`~srkeras.inference.split.Split`, or None: the model runs whole."""
        from srkeras.inference.split import split_generator

        return split_generator(self.model)

    @cached_property
    def stage_runners(self) -> tuple:
        """(trunk runner, tail runner) of the split model."""
        return traced_runner(self.split.trunk), traced_runner(self.split.tail)

    @property
    def tail_receptive_field(self) -> int | None:
        """Radius (LR px) of the tail on the trunk's features of the probe bases; 0 when not split."""
        if self.split is None:
            return 0
        if self.facts.tail_receptive_field is UNMEASURED:
            trunk, tail = self.stage_runners
            c = self.channels

            def features(p):  # one image per trunk call, as the probe runs the tail: within the probe's budget
                return np.concatenate([run_model(trunk, b[None]) for b in probing.impulse_bases(c, p)])

            self.note(f"measuring the tail's receptive field (impulse probe up to {self._largest_probe()} LR px)")
            rf = probing.measure_receptive_field(tail, features, self.scale, progress=self.progress, sizes=self.probe_sizes)
            self._warn_if_cut(rf)
            self.facts.tail_receptive_field = rf
        return self.facts.tail_receptive_field

    @cached_property
    def costs(self) -> probing.Costs:
        """Live bytes and FLOPs per LR pixel of the stages the model runs as."""
        # the runner only if the graph does not tell the output channels (a compiled one would be loaded for nothing)
        return probing.measure_costs(self.model, lambda x: self.runner(x), self.split, self.scale, self.channels)

    def measure_fields(self) -> None:
        """Probe the effective receptive fields (whole model, tail) now, on float32: a bfloat16 model's
        rounding would make every perturbation look global. Kept in :attr:`facts`."""
        src = self
        if self.precision == "bfloat16":
            from srkeras.inference.precision import as_float32

            src = ServedModel(as_float32(self.model), dataclasses.replace(self.facts))
            src.progress, src.probe_sizes = self.progress, self.probe_sizes
        self.facts.receptive_field = src.receptive_field
        self.facts.tail_receptive_field = src.tail_receptive_field

    def has_measured_field(self) -> bool:
        """Whether the (effective, probed) receptive field is known: no probe is needed for margins."""
        return self.facts.receptive_field is not UNMEASURED

    def bound_margins(self) -> Margins | None:
        """Margins from the analytic bounds (sidecar, :mod:`srkeras.inference.receptive`) when the effective
        field has not been measured, so no probe runs; None otherwise. Tiling with them is exact."""
        f = self.facts
        if self.has_measured_field() or f.receptive_field_bound is None:
            return None
        if self.split is None:
            return Margins(f.receptive_field_bound + 2, 0, True, bound=True)
        if f.tail_receptive_field_bound is None:
            return None
        tail = f.tail_receptive_field_bound + 2
        return Margins(max(f.receptive_field_bound + 2, tail), tail, True, bound=True)

    def margins(self, overlap: int | None = None) -> Margins:
        """Tile margins: ``overlap`` for both stages when given, else ``R + 2`` and ``R_tail + 2``.

        The trunk window's margin must cover the *whole model's* receptive field: the tail tiles
        reproduce ``model(window)`` on the core exactly (their own margin covers the tail's field),
        and ``model(window)`` equals ``model(image)`` on the core when the window reaches ``R + 2``
        beyond it, as for an unsplit model. The trunk window must also contain the tail's margin.
        """
        if overlap is not None:
            o = int(overlap)
            return Margins(o, o if self.split is not None else 0, True)
        bounded = self.bound_margins()
        if bounded is not None:
            return bounded
        rf = self.receptive_field
        tail_rf = self.tail_receptive_field
        exact = rf is not None and tail_rf is not None
        if not exact:
            warnings.warn(
                "this model's receptive field is global (pooling/attention): tiled output will differ "
                "from untiled; use --tile 0 if the image fits in memory",
                stacklevel=3,
            )
        trunk = (rf if rf is not None else DEFAULT_RADIUS) + 2
        if self.split is None:
            return Margins(trunk, 0, exact)
        tail = (tail_rf if tail_rf is not None else DEFAULT_RADIUS) + 2
        return Margins(max(trunk, tail), tail, exact)


_served: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def serve(model) -> ServedModel:
    """``model`` itself if it is a :class:`ServedModel`, else the one ServedModel of a bare ``keras.Model``
    (made on first use, kept while the model lives; module docstring)."""
    if isinstance(model, ServedModel):
        return model
    try:
        served = _served.get(model)
    except TypeError:  # not weakly referable: serve it afresh
        return ServedModel(model)
    if served is None:
        served = _served[model] = ServedModel(model, borrowed=True)
    return served


def model_scale(model) -> int:
    """Integer upscaling factor of a generator (a ServedModel or keras.Model), measured once."""
    return serve(model).scale


def receptive_field(model, tol: float = probing.RF_TOL, max_probe: int = probing.PROBE_SIZES[-1]) -> int | None:
    """Effective receptive-field radius in LR pixels (:mod:`srkeras.inference.probing`); None if global.
    Kept by the served model at the default ``tol`` and ``max_probe``."""
    served = serve(model)
    if (tol, max_probe) == (probing.RF_TOL, probing.PROBE_SIZES[-1]):
        return served.receptive_field
    return served.measure_receptive_field(tol, max_probe)


def reflect_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """Reflect-pad the two spatial axes of an (H, W, C) or (N, H, W, C) array by ``pad`` pixels,
    as Real-ESRGAN's runtimes do (symmetric when an edge is too short to reflect)."""
    if pad <= 0:
        return image
    mode = "symmetric" if min(image.shape[-3], image.shape[-2]) <= pad else "reflect"
    return np.pad(image, [(0, 0)] * (image.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)], mode=mode)


__all__ = [
    "UNMEASURED",
    "Margins",
    "NetworkFacts",
    "ServedModel",
    "Unmeasured",
    "model_scale",
    "receptive_field",
    "reflect_pad",
    "serve",
]
