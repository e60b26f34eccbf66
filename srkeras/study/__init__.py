"""The perceptual-loss backbone study: which ImageNet network's features make the best SRGAN content loss.

* :mod:`~srkeras.study.layers`: the depth table (the layer of each network in VGG54's / VGG22's role);
* :mod:`~srkeras.study.plan`: settings, backbones and their (local, never downloaded) weights;
* :mod:`~srkeras.study.training`: the SRResNet start, one SRGAN per backbone, the measured cost plan;
* :mod:`~srkeras.study.scoring`: PSNR/SSIM and perceptual metrics per test set, ``results.csv``;
* :mod:`~srkeras.study.cost`: GPU-hours of a paper-size study from the models' MACs;
* :mod:`~srkeras.study.backbones`: :func:`run_study`, the whole chain, resumable.

The MOS registration lives in :mod:`jobs.backbone_study` (the library never touches a database).
"""

from srkeras.study.backbones import StudyResult, run_study
from srkeras.study.errors import NoBackbones, StudyConfigError, StudyError
from srkeras.study.layers import DEPTH_TABLE, markdown_table, tap
from srkeras.study.plan import Entry, StudyConfig, entries

__all__ = [
    "DEPTH_TABLE",
    "Entry",
    "NoBackbones",
    "StudyConfig",
    "StudyConfigError",
    "StudyError",
    "StudyResult",
    "entries",
    "markdown_table",
    "run_study",
    "tap",
]
