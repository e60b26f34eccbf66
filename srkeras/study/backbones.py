"""The perceptual-loss backbone study, end to end (the library half of ``pipelines.study backbones``).

1. one SRResNet-MSE generator, the common start (``runs/srresnet_mse``);
2. per backbone, SRGAN (``srgan_vgg54``: content loss on the backbone's depth-table layer,
   :mod:`srkeras.study.layers`, + 1e-3 adversarial) from that start, same budget, seed and data order
   (``runs/<backbone>-<depth>``);
3. bicubic, HR, the start and every SRGAN scored on each test set (:mod:`srkeras.study.scoring`);
4. ``study.json``: the methods, their generators and labels (what the MOS registration reads).

Before training, a cost plan from a short timed run of each configuration is printed. Resumable at
any point: ``STUDY_DIR/state.json`` marks finished steps (:mod:`srkeras.study.state`) and training
resumes from its checkpoints. Nothing here touches a database (``pipelines.study`` does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from srkeras.study import scoring, training
from srkeras.study.plan import Entry, StudyConfig, entries
from srkeras.study.state import StudyState, write_json

MANIFEST = "study.json"


@dataclass
class StudyResult:
    config: StudyConfig
    entries: list[Entry]
    models: dict[str, Path] = field(default_factory=dict)  # method -> generator (.keras)
    rows: list[dict] = field(default_factory=list)
    plan: dict = field(default_factory=dict)

    @property
    def skipped(self) -> list[Entry]:
        return [e for e in self.entries if e.skipped]

    @property
    def trained(self) -> list[Entry]:
        return [e for e in self.entries if e.skipped is None]


def report_weights(found: list[Entry], log=print) -> None:
    """Say where each backbone's weights come from, and which are skipped or random."""
    for e in found:
        if e.skipped:
            log(f"skipping {e.id}: {e.skipped}")
        elif e.weights_label == "random":
            log(f"WARNING {e.id}: no ImageNet weights, RANDOM initialisation (--smoke only; labelled weights=random)")
        else:
            log(f"{e.id}: {e.tap.layer} ({e.weights_label}: {e.weights})")


def train_all(cfg: StudyConfig, state: StudyState, found: list[Entry], log=print) -> dict[str, Path]:
    """The start, then each backbone's SRGAN from it; {method: model.keras}."""
    models = {}
    start_dir = training.run_dir(cfg, training.START)
    if cfg.start is not None:
        models[training.START] = cfg.start_model
        log(f"[train:{training.START}] reusing {cfg.start_model}")
    elif cfg.n_pretrain > 0:
        models[training.START] = training.train_once(cfg, state, f"train:{training.START}", training.start_recipe(cfg),
                                                     start_dir, log)
    for i, e in enumerate([e for e in found if e.skipped is None], 1):
        log(f"--- backbone {i}: {e.id} ({e.tap.layer}, weights={e.weights_label})")
        init = models.get(training.START, "none")
        scale = state.info(f"feature_scale:{e.id}")
        if scale is None:  # measured once and kept: a resumed run must see the same recipe
            scale = training.feature_scale(cfg, e)
            state.note(f"feature_scale:{e.id}", scale)
        log(f"    content loss: MSE of features x {scale:.4g} ({cfg.feature_norm})")
        recipe = training.gan_recipe(cfg, e, init, scale=scale)
        models[e.method] = training.train_once(cfg, state, f"train:{e.id}", recipe, training.run_dir(cfg, e.id), log)
    return models


def score_all(cfg: StudyConfig, state: StudyState, found: list[Entry], models: dict, log=print) -> list[dict]:
    methods: list[tuple[str, Entry | None]] = [("bicubic", None), ("hr", None)]
    if training.START in models:
        methods.append((training.START, None))
    methods += [(e.method, e) for e in found if e.skipped is None]
    for dataset, folder in cfg.datasets().items():
        pairs = scoring.test_images(folder, cfg.scale)
        for method, _entry in methods:
            scoring.score_method(cfg, state, method, models.get(method), dataset, pairs, log)
    return scoring.aggregate(cfg, methods, log)


def write_manifest(result: StudyResult) -> Path:
    """``study.json``: settings, the depth-table rows used, methods and generators, skipped backbones."""
    cfg = result.config
    data = {
        "settings": cfg.fingerprint(),
        "datasets": {k: str(v.resolve()) for k, v in cfg.datasets().items()},
        "metrics": list(cfg.metric_names),
        "models": {m: str(p.resolve()) for m, p in result.models.items()},
        "backbones": [
            {"id": e.id, "method": e.method, "backbone": e.backbone, "depth": e.depth, "layer": e.tap.layer,
             "weights": e.weights_label, "skipped": e.skipped}
            for e in result.entries
        ],
        "cost_plan": result.plan,
    }
    path = Path(cfg.out) / MANIFEST
    write_json(path, data)
    return path


def preflight(cfg: StudyConfig, log=print) -> tuple[StudyConfig, list[Entry]]:
    """What the whole chain needs, checked before the first step (:mod:`srkeras.preflight`): the
    assets of the metrics asked for (``--metric``; by default only the installed ones are scored, and
    the log says which are left out), a writable study folder with room for the checkpoints, and at
    least one backbone with weights. Raises one :class:`~srkeras.preflight.PreflightError` listing all."""
    from srkeras.preflight import TRAINING_FREE_BYTES, Preflight, installed_metrics
    from srkeras.pretrained.metric_assets import fetch_command
    from srkeras.study.errors import NoBackbones

    pf = Preflight("pipelines.study backbones")
    if cfg.metrics:
        pf.metric_assets(cfg.metric_names)
    else:
        have, left, fetch = installed_metrics(cfg.metric_names)
        cfg = dataclasses.replace(cfg, metrics=tuple(have))
        log(f"scoring {', '.join(have)}" + (f"; not scoring {', '.join(left)} (not installed: "
            f"`{fetch_command(fetch)}` installs them)" if left else ""))  # fmt: skip
    found: list[Entry] = []
    try:
        found = entries(cfg)
    except NoBackbones as e:
        pf.add(str(e))
    runs = 1 + sum(e.skipped is None for e in found)
    pf.output(cfg.out, "--out", need_bytes=runs * (TRAINING_FREE_BYTES // 8 if cfg.smoke else TRAINING_FREE_BYTES))
    pf.check()
    return cfg, found


def run_study(cfg: StudyConfig, log=print) -> StudyResult:
    """Train (or reuse), score and tabulate; see the module docstring. Raises
    :class:`~srkeras.study.errors.StudyConfigError` (bad arguments, a study folder of other settings)
    or :class:`~srkeras.preflight.PreflightError` (:func:`preflight`) before any training."""
    cfg, found = preflight(cfg, log)
    state = StudyState(cfg.out, cfg.fingerprint())
    report_weights(found, log)
    state.note("skipped", {e.id: e.skipped for e in found if e.skipped})
    result = StudyResult(cfg, found)
    result.plan = training.cost_plan(cfg, state, found, log)
    result.models = train_all(cfg, state, found, log)
    result.rows = score_all(cfg, state, found, result.models, log)
    write_manifest(result)
    log(f"results: {Path(cfg.out) / 'results.csv'} and {Path(cfg.out) / 'results.md'}")
    return result


__all__ = ["MANIFEST", "StudyResult", "preflight", "report_weights", "run_study", "score_all", "train_all", "write_manifest"]
