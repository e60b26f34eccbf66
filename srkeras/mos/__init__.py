"""Statistics of MOS studies (issue 12): pure functions on pandas frames, no database, no TensorFlow.

Modules: :mod:`~srkeras.mos.schema` (frame schema, CSV import), :mod:`~srkeras.mos.scores` (MOS, CIs,
histograms, ranks, z-scores), :mod:`~srkeras.mos.screening` (BT.500, gold, retest, speed),
:mod:`~srkeras.mos.subject_models` (P.913 bias, P.910/P.913 MLE), :mod:`~srkeras.mos.significance`
(Wilcoxon + Holm), :mod:`~srkeras.mos.pairs` (Bradley-Terry, Thurstone), :mod:`~srkeras.mos.agreement`
(Krippendorff alpha, split-half), :mod:`~srkeras.mos.correlation` (metrics vs MOS),
:mod:`~srkeras.mos.report` (everything at once), :mod:`~srkeras.mos.html` / :mod:`~srkeras.mos.svg`
(self-contained report), :mod:`~srkeras.mos.simulate` (synthetic studies, SRGAN Table 2).
"""

from srkeras.mos.report import Report, analyze, summary
from srkeras.mos.schema import (
    RatingsFileError,
    read_acr_csv,
    read_metrics_csv,
    read_pairs_csv,
    validate_acr,
    validate_metrics,
    validate_pairs,
)

__all__ = [
    "RatingsFileError",
    "Report",
    "analyze",
    "read_acr_csv",
    "read_metrics_csv",
    "read_pairs_csv",
    "summary",
    "validate_acr",
    "validate_metrics",
    "validate_pairs",
]
