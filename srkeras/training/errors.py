"""The errors a training run reports to its user (the command line maps them to exit codes)."""

from __future__ import annotations

import contextlib

EXIT_NAN = 3
EXIT_WORKER_LOST = 4


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN/Inf; the last good checkpoint was kept."""


class WorkerLostError(TrainingError):
    """Multi-worker: another worker died or stopped answering; the message names it and how to resume."""


class OutputError(TrainingError):
    """A file of the run (checkpoint, model, log) could not be written: disk full, read-only folder, ...
    The message names the path; the checkpoints written before it are kept."""


@contextlib.contextmanager
def writing(path):
    """Turn a failed write of ``path`` -- an ``OSError``, or the TensorFlow error a checkpoint or summary
    write raises for it -- into :class:`OutputError` naming ``path`` and the reason (e.g. disk full)."""
    from srkeras.files import display_name, write_error

    try:
        yield
    except OSError as e:
        raise OutputError(write_error(path, e)) from None
    except Exception as e:  # noqa: BLE001 - only TensorFlow's I/O errors are mapped; anything else as it is
        import tensorflow as tf

        if not isinstance(e, (tf.errors.ResourceExhaustedError, tf.errors.UnknownError, tf.errors.FailedPreconditionError,
                              tf.errors.PermissionDeniedError, tf.errors.NotFoundError, tf.errors.DataLossError)):
            raise
        text = str(e.message if hasattr(e, "message") else e).strip().splitlines() or ["write failed"]
        why = "no space left on the device" if "no space left" in str(e).lower() else text[0]
        raise OutputError(f"cannot write {display_name(path)}: {why}") from None


def write_run_file(path, write) -> None:
    """:func:`srkeras.files.write_atomically` of a run's file; a failed write raises :class:`OutputError`."""
    from srkeras.files import write_atomically

    with writing(path):
        write_atomically(path, write)
