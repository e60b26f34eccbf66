"""The JSON sidecar ``NAME.json`` beside a model file ``NAME.keras`` (or a metric asset ``NAME.npz``).

:class:`ModelSidecar` is its only reader and writer. It records the file's sha256
(``model_sha256``), so a sidecar that does not belong to the file beside it is stale and ignored,
and what serving needs without probing (:class:`~srkeras.inference.served.NetworkFacts`): the
scale (``scale``, nominal; ``scale_probed``, measured), the reflect pre-padding of the original
runtime (``pre_pad``, LR px, ``pad_mode`` "reflect"), and the receptive fields measured with the
probe tolerance ``rf_tol`` (``receptive_field``; ``tail_receptive_field`` for a model split into
trunk and tail), and the analytic bounds of both (``receptive_field_bound``,
``tail_receptive_field_bound``: :mod:`srkeras.inference.receptive`), which tile exactly without a probe. Installed models add where they come from (``arch``, ``licence``, ``params`` and,
under their own keys, ``source``, ``verification``, ``options``...: :attr:`ModelSidecar.about`).

Versions. 1 (``sidecar_version: 1``): written by this module and by the model store since
pretrained models exist. 0 (no ``sidecar_version`` key): written by ``pipelines.export --format
keras`` before version 1; the same keys (``pre_pad``, ``pad_mode``, ``receptive_field``,
``rf_tol``, ``scale``, ``model_sha256``) and no provenance. Both load; a newer version is ignored.
A value that is missing, stale or measured with another tolerance is left out and serving probes
it on first use as for any model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from srkeras.files import sha256_file, write_atomically
from srkeras.inference.probing import RF_TOL
from srkeras.inference.served import NetworkFacts

SIDECAR_VERSION = 1


def _count(v) -> int | None:
    """``v`` if it is a non-negative int (not a bool), else None: what the numeric keys may hold."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclass(frozen=True, kw_only=True)
class ModelSidecar:
    """One sidecar (module docstring); ``None`` fields are not written."""

    version: int = SIDECAR_VERSION
    name: str | None = None
    model_sha256: str | None = None  # filled by write()
    scale: int | None = None  # nominal (catalogue, checkpoint)
    scale_probed: int | None = None  # measured
    pre_pad: int | None = None  # None: not a served model (metric asset)
    pad_mode: str | None = None
    receptive_field: int | None = None
    rf_tol: float | None = None
    tail_receptive_field: int | None = None
    receptive_field_bound: int | None = None  # analytic (srkeras.inference.receptive): exact tiling, no probe
    tail_receptive_field_bound: int | None = None
    whole_image: bool | None = None  # the network pools over the whole image: global field, no probe needed
    probe_error: str | None = None  # why a measurement failed at install time
    arch: str | None = None
    licence: str | None = None
    params: int | None = None
    about: dict = field(default_factory=dict)  # every other key, as written (source, verification, ...)

    # -- reading --------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: dict) -> ModelSidecar | None:
        """The sidecar of a parsed JSON object, version 0 or 1; None for a newer or unusable one."""
        version = data.get("sidecar_version", 0)
        if not isinstance(version, int) or version > SIDECAR_VERSION:
            return None
        typed = {f.name for f in dataclasses.fields(cls)} - {"version", "about"}
        counts = ("scale", "scale_probed", "pre_pad", "receptive_field", "tail_receptive_field", "params",
                  "receptive_field_bound", "tail_receptive_field_bound")
        values = {k: (_count(data.get(k)) if k in counts else data.get(k)) for k in typed}
        about = {k: v for k, v in data.items() if k not in typed and k != "sidecar_version"}
        return cls(version=version, about=about, **values)

    @classmethod
    def read(cls, path, file_sha256: str | None = None) -> ModelSidecar | None:
        """The sidecar (``NAME.json``) of the file ``path``, or None when it is missing, unreadable,
        stale (its ``model_sha256`` is not the file's) or of a newer version. ``file_sha256``: the
        file's sha256 when the caller knows it (:mod:`srkeras.inference.compiled`), so it is not hashed again."""
        path = Path(path)
        try:
            data = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("model_sha256") != (file_sha256 or sha256_file(path)):
            return None
        return cls.from_json(data)

    def network_facts(self) -> NetworkFacts:
        """What this sidecar tells serving; a receptive field measured at another tolerance is left out."""
        facts = NetworkFacts(scale=self.scale_probed or self.scale or None, pre_pad=self.pre_pad or 0,
                             receptive_field_bound=self.receptive_field_bound,
                             tail_receptive_field_bound=self.tail_receptive_field_bound)
        if facts.pre_pad and self.pad_mode not in (None, "reflect"):
            raise ValueError(f"sidecar pad_mode {self.pad_mode!r}: only 'reflect' is supported")
        if self.whole_image is True:  # global (srkeras.inference.receptive.reads_whole_image): no probe
            facts.receptive_field = facts.tail_receptive_field = None
        elif self.receptive_field is not None and self.rf_tol == RF_TOL:
            facts.receptive_field = self.receptive_field
            if self.tail_receptive_field is not None:
                facts.tail_receptive_field = self.tail_receptive_field
        return facts

    # -- writing --------------------------------------------------------------------------------

    @classmethod
    def recording(cls, facts: NetworkFacts, **fields) -> ModelSidecar:
        """A sidecar recording the measured ``facts`` (a global or unmeasured field is left out), plus ``fields``."""
        rf = facts.receptive_field if isinstance(facts.receptive_field, int) else None
        tail_rf = facts.tail_receptive_field if isinstance(facts.tail_receptive_field, int) else None
        measured = {"receptive_field": rf, "rf_tol": RF_TOL if rf is not None else None,
                    "tail_receptive_field": tail_rf if rf is not None else None}  # fmt: skip
        base = {"pre_pad": facts.pre_pad, "pad_mode": "reflect" if facts.pre_pad else None, "scale": facts.scale,
                "receptive_field_bound": facts.receptive_field_bound,
                "tail_receptive_field_bound": facts.tail_receptive_field_bound}  # fmt: skip
        return cls(**{**base, **measured, **fields})

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("version", "about")}
        return {**self.about, **{k: v for k, v in data.items() if v is not None}, "sidecar_version": self.version}

    def write(self, path) -> Path:
        """Write this sidecar beside the file ``path`` (atomically), recording the file's sha256."""
        side = dataclasses.replace(self, version=SIDECAR_VERSION, model_sha256=sha256_file(path))
        text = json.dumps(side.to_json(), indent=2, sort_keys=True, default=_json_default)
        return write_atomically(Path(path).with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))


__all__ = ["SIDECAR_VERSION", "ModelSidecar"]
