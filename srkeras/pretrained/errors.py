"""Typed errors of :mod:`srkeras.pretrained`; every message names the file or package at fault."""

from __future__ import annotations


class PretrainedError(Exception):
    """Base class; the CLI maps subclasses to exit codes (:attr:`exit_code`)."""

    exit_code = 1


class UnknownModelError(PretrainedError):
    """A name that is not in the catalogue."""

    exit_code = 2


class ModelExistsError(PretrainedError):
    """An import under the name of an installed model, without ``overwrite``; nothing is replaced."""

    exit_code = 2


class OfflineError(PretrainedError):
    """The registry could not be reached; the message names the package and the command to run."""

    exit_code = 3


class ChecksumError(PretrainedError):
    """A downloaded package or file whose sha256 differs from the pinned one (tampered/truncated)."""

    exit_code = 4


class CheckpointError(PretrainedError):
    """A checkpoint that cannot be read: truncated, not a PyTorch file, or pickling unsafe objects."""

    exit_code = 5


class UnknownArchitectureError(PretrainedError):
    """A checkpoint whose keys match no supported architecture (or not the one asked for)."""

    exit_code = 6


class ShapeMismatchError(PretrainedError):
    """A weight whose shape does not fit the architecture."""

    exit_code = 7


class ScaleMismatchError(PretrainedError):
    """A checkpoint trained for another upscaling factor than the one asked for."""

    exit_code = 8


class VerificationError(PretrainedError):
    """A converted model that does not reproduce its package's reference output."""

    exit_code = 9


class ConversionUnavailableError(UnknownArchitectureError):
    """A checkpoint whose architecture was detected (named, with its hyper-parameters) but that
    srkeras has no Keras builder or converter for."""

    exit_code = 6
