"""Jobs: the orchestrations that need storage, shared by the command lines, the apps and the study.

The rule: a job lives here when it touches the database (``from db import ...``); an orchestration
that needs no storage lives in :mod:`srkeras` beside what it runs (the evaluation run in
:mod:`srkeras.evaluation_run`, the training run in :mod:`srkeras.training.job`, stimulus making in
:mod:`srkeras.stimulus_set`). Either way a job takes one typed spec (a frozen dataclass), raises
typed errors whose message names the remedy, and prints nothing of its own (progress and notes go
through a ``log`` callback); ``pipelines.*`` parse the command line into the spec, call the job and
map its errors to messages and exit codes.

Layers: ``pipelines`` and ``mos_app`` > ``jobs`` > ``db`` > ``srkeras``; jobs import storage only
through its public door (``from db import ...``).

* :mod:`~jobs.mos_study`: :func:`~jobs.mos_study.make_study` (stimuli made, stored blind, registered);
* :mod:`~jobs.backbone_study`: the backbone study's MOS studies, one per test set, resumable;
* :mod:`~jobs.simulated_raters`: simulated raters answering a registered study (a chain check).
"""
