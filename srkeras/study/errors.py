"""Typed errors of the backbone study (each message names the input or file at fault)."""

from __future__ import annotations


class StudyError(Exception):
    """The backbone study cannot go on."""


class StudyConfigError(StudyError, ValueError):
    """Unusable arguments: an unknown backbone or depth, a missing folder, a study folder made with
    other settings."""


class NoBackbones(StudyConfigError):
    """No requested backbone has weights (and random init is allowed only under ``--smoke``)."""


__all__ = ["NoBackbones", "StudyConfigError", "StudyError"]
