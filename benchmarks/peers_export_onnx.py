"""Export RRDBNet (Real-ESRGAN x4plus), SRVGGNetCompact (animevideov3) and RDN (UpscalerJS esrgan-medium,
``rdn_div2k_x4``) to ONNX for the peers benchmark.

Run with a *scratch* Python that has torch (never a product dependency), on weights dumped from the
installed Keras models (``benchmarks/bench_peers.py --dump`` writes ``NAME.npz`` with every weight by
Keras path, plus a random input ``__x`` and the Keras output ``__y``):

    /work/scratch/torch/bin/python benchmarks/peers_export_onnx.py DIR   # DIR/NAME.npz -> DIR/NAME.onnx

The modules are the reference architectures (BasicSR ``RRDBNet``, Real-ESRGAN ``SRVGGNetCompact``,
idealo ISR's ``RDN`` with its ``'ups'`` head, as UpscalerJS ships it) written out here; Keras kernels (kh, kw, in, out) become torch (out, in, kh, kw); PixelShuffle's
output channels are reordered from TF's depth_to_space order to torch's. The export is checked
against ``__y`` (max abs diff printed, must be < 1e-4). Legacy (TorchScript) exporter, opset 17,
dynamic height and width.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class RDB(nn.Module):
    def __init__(self, nf=64, gc=32):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, 1, 1) for i in range(5)])

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(F.leaky_relu(y, 0.2))
        return x + 0.2 * y


class RRDBNet(nn.Module):
    def __init__(self, nb=23, nf=64):
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.blocks = nn.ModuleList([nn.ModuleList([RDB(nf) for _ in range(3)]) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.up = nn.ModuleList([nn.Conv2d(nf, nf, 3, 1, 1) for _ in range(2)])
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
        feat = self.conv_first(x)
        y = feat
        for rrdb in self.blocks:
            z = y
            for rdb in rrdb:
                z = rdb(z)
            y = y + 0.2 * z
        y = feat + self.conv_body(y)
        for conv in self.up:
            y = F.leaky_relu(conv(F.interpolate(y, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(y), 0.2))


class SRVGG(nn.Module):
    def __init__(self, nc=16, nf=64, s=4):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else nf, nf, 3, 1, 1) for i in range(nc + 1)])
        self.acts = nn.ModuleList([nn.PReLU(nf) for _ in range(nc + 1)])
        self.last = nn.Conv2d(nf, 3 * s * s, 3, 1, 1)
        self.s = s

    def forward(self, x):
        y = x
        for conv, act in zip(self.convs, self.acts):
            y = act(conv(y))
        y = F.pixel_shuffle(self.last(y), self.s)
        return y + F.interpolate(x, scale_factor=self.s, mode="nearest")


class RDN(nn.Module):
    """idealo ISR RDN (Zhang et al. 2018; srkeras.models.rdn.build_rdn): C convs per dense block, D blocks,
    'ups' head (5x5 64, 3x3 32, 3x3 3*s*s, nearest x s, 3x3); UpscalerJS's works on [0, 255] pixels."""

    def __init__(self, C=1, D=10, G=64, G0=64, s=4, pixel_range=255.0):
        super().__init__()
        self.f_m1, self.f_0 = nn.Conv2d(3, G0, 3, 1, 1), nn.Conv2d(G0, G0, 3, 1, 1)
        self.rdbs = nn.ModuleList([nn.ModuleList([nn.Conv2d(G0 + c * G, G, 3, 1, 1) for c in range(C)]) for _ in range(D)])
        self.lff = nn.ModuleList([nn.Conv2d(G0 + C * G, G0, 1) for _ in range(D)])
        self.gff_1, self.gff_2 = nn.Conv2d(D * G0, G0, 1), nn.Conv2d(G0, G0, 3, 1, 1)
        self.upn1, self.upn2 = nn.Conv2d(G0, 64, 5, 1, 2), nn.Conv2d(64, 32, 3, 1, 1)
        self.upn3, self.sr = nn.Conv2d(32, 3 * s * s, 3, 1, 1), nn.Conv2d(3, 3, 3, 1, 1)
        self.s, self.pixel_range = s, pixel_range

    def forward(self, x):
        f_m1 = self.f_m1(x * self.pixel_range)
        y = self.f_0(f_m1)
        lrls = []
        for convs, lff in zip(self.rdbs, self.lff):
            z = y
            for conv in convs:
                z = torch.cat([z, F.relu(conv(z))], 1)
            y = lff(z) + y
            lrls.append(y)
        y = self.gff_2(self.gff_1(torch.cat(lrls, 1))) + f_m1
        y = self.upn3(F.relu(self.upn2(F.relu(self.upn1(y)))))
        return self.sr(F.interpolate(y, scale_factor=self.s, mode="nearest")) / self.pixel_range


def _set(conv, w, prefix, shuffle=None):
    k = torch.from_numpy(np.transpose(w[f"{prefix}/kernel"], (3, 2, 0, 1)).copy())
    b = torch.from_numpy(w[f"{prefix}/bias"].copy())
    if shuffle:  # TF depth_to_space channel (i*r + j)*C + c  ->  torch pixel_shuffle c*r*r + i*r + j
        r, c = shuffle
        order = [(i * r + j) * c + ch for ch in range(c) for i in range(r) for j in range(r)]
        k, b = k[order], b[order]
    conv.weight.data, conv.bias.data = k, b


def load_rrdbnet(w):
    m = RRDBNet()
    _set(m.conv_first, w, "conv_first")
    for b, rrdb in enumerate(m.blocks):
        for d, rdb in enumerate(rrdb):
            for i, conv in enumerate(rdb.convs):
                _set(conv, w, f"rrdb{b}_rdb{d}_conv{i + 1}")
    _set(m.conv_body, w, "conv_body")
    for i, conv in enumerate(m.up):
        _set(conv, w, f"up{i}_conv")
    _set(m.conv_hr, w, "conv_hr")
    _set(m.conv_last, w, "conv_last")
    return m


def load_srvgg(w):
    m = SRVGG()
    for i, (conv, act) in enumerate(zip(m.convs, m.acts)):
        _set(conv, w, f"conv{i}")
        act.weight.data = torch.from_numpy(np.asarray(w[f"act{i}/alpha"]).reshape(-1).copy())
    _set(m.last, w, "conv17", shuffle=(4, 3))
    return m


def load_rdn(w):
    m = RDN()
    for n, conv in zip(("F_m1", "F_0", "GFF_1", "GFF_2", "UPN1", "UPN2", "UPN3", "SR"),
                       (m.f_m1, m.f_0, m.gff_1, m.gff_2, m.upn1, m.upn2, m.upn3, m.sr)):
        _set(conv, w, n)
    for d, (convs, lff) in enumerate(zip(m.rdbs, m.lff), start=1):
        for c, conv in enumerate(convs, start=1):
            _set(conv, w, f"F_{d}_{c}")
        _set(lff, w, f"LFF_{d}")
    return m


LOADERS = {"realesrgan_x4plus": load_rrdbnet, "realesr_animevideov3": load_srvgg, "rdn_div2k_x4": load_rdn}


def main(folder):
    folder = Path(folder)
    for name, load in LOADERS.items():
        if not (folder / f"{name}.npz").is_file():
            print(f"{name}: no {name}.npz in {folder} (bench_peers.py --dump --models {name}); skipped")
            continue
        w = dict(np.load(folder / f"{name}.npz"))
        m = load(w).eval()
        x = torch.from_numpy(np.transpose(w["__x"], (0, 3, 1, 2)).copy())
        with torch.no_grad():
            y = m(x).numpy().transpose(0, 2, 3, 1)
        diff = float(np.abs(y - w["__y"]).max())
        print(f"{name}: torch vs keras max abs diff {diff:.2e}")
        assert diff < 1e-4, diff
        torch.onnx.export(m, x, str(folder / f"{name}.onnx"), input_names=["lr"], output_names=["sr"], opset_version=17,
                          dynamic_axes={"lr": {2: "h", 3: "w"}, "sr": {2: "H", 3: "W"}}, dynamo=False)


if __name__ == "__main__":
    main(sys.argv[1])
