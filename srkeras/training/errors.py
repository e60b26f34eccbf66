"""The errors a training run reports to its user (the command line maps them to exit codes)."""

from __future__ import annotations

EXIT_NAN = 3
EXIT_WORKER_LOST = 4


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN/Inf; the last good checkpoint was kept."""


class WorkerLostError(TrainingError):
    """Multi-worker: another worker died or stopped answering; the message names it and how to resume."""
