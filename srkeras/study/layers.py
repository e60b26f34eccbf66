"""The depth table of the backbone study: which layer of each network plays VGG54's and VGG22's role.

SRGAN's two content losses tap VGG19 after a ReLU:

* **VGG54** (``deep``): ``block5_conv4``, the last convolution of the network, at output stride 1/16
  (the deepest map before the final pool), receptive field 252 px;
* **VGG22** (``shallow``): ``block2_conv2``, the end of the second stage, stride 1/2, receptive field 14 px.

For the other networks the same roles are assigned by rule, so the comparison is between networks
and not between depths:

* ``deep``: the **last activation at output stride 1/16**, i.e. the output of the stride-16 stage
  (ResNet ``conv4``, DenseNet dense block 3, Inception ``mixed7``, ConvNeXt stage 3, EfficientNetV2
  stage 5), before the network drops to 1/32, which VGG's convolutional part never does. Deep
  networks reach much larger receptive fields there (ResNet152: 1315 px): stride, not receptive
  field, is what can be matched, since it fixes how finely the loss localises errors (a 96 px crop
  gives a 6x6 map for every network).
* ``shallow``: the **first activation at stride <= 1/4 whose receptive field reaches VGG22's 14 px**.
  Networks whose stem goes to stride 1/4 at once (ResNet, DenseNet, ConvNeXt, EfficientNetV2) get the
  first block after the stem (receptive field 15-28 px, stride 1/4); InceptionV3's three-convolution
  stem still runs at 1/2 (11 px), as VGG22 does.
* **after the activation**, as SRGAN (ESRGAN's pre-activation taps exist for VGG only: a
  pre-activation ResNet/DenseNet block output has no activation of its own). For pre-activation
  networks (ResNetV2, DenseNet) the activated form of a block's output is the *next* unit's BN-ReLU
  (``..._preact_relu``, ``..._0_relu``, ``pool4_relu``), which is what the network itself feeds on;
  ConvNeXt and EfficientNetV2 blocks end linearly (no activation on the residual sum), so the last
  GELU/SiLU inside (ConvNeXt) or the next block's expansion activation (EfficientNetV2) is used.

Receptive fields are computed from the graph (kernel sizes and strides, nested blocks included);
``index`` is the layer's position in ``keras.applications``' model (its relative depth is
``index / layers``). InceptionV3's stem layers have only automatic names (``activation_2``,
numbered per session), so they are referred to by position: ``"#9"``
(:func:`srkeras.losses.backbones.layer_name`).
"""

from __future__ import annotations

from dataclasses import dataclass

from srkeras.study.errors import StudyConfigError

DEPTHS = ("deep", "shallow")
ROLE = {"deep": "VGG54", "shallow": "VGG22"}


@dataclass(frozen=True)
class Tap:
    """One row of the table: the layer (name or ``"#N"``), where it sits and why."""

    layer: str
    stride: int  # output stride (input side / map side)
    rf: int  # receptive field in input pixels
    index: int  # position in the keras.applications model
    layers: int  # number of layers of that model
    activation: str  # the activation the tap is after
    why: str

    @property
    def relative_depth(self) -> float:
        return self.index / max(1, self.layers - 1)


def _t(layer, stride, rf, index, layers, activation, why) -> Tap:
    return Tap(layer, stride, rf, index, layers, activation, why)


_VGG_D = "SRGAN phi_5,j: last conv, stride 1/16"
_VGG_S = "SRGAN phi_2,2: end of stage 2, stride 1/2, RF 14"
_RES_D = "output of the stride-16 stage conv4 (last block)"
_RES_S = "first bottleneck after the stem (stride 1/4, RF 19)"
_V2_D = "BN-ReLU of conv4's output (pre-activation net: the next unit's preact)"
_V2_S = "BN-ReLU of the first block's output (the next unit's preact)"
_DN_D = "BN-ReLU of dense block 3's output (transition 3 input), stride 1/16"
_DN_S = "BN-ReLU of the first dense layer's output (stride 1/4, RF 19)"
_CNX_D = "GELU of the last block of stage 3 (stride 1/16; block outputs are linear)"
_CNX_S = "GELU of the first block (stem is a 4x4/4 patchify: stride 1/4, RF 28)"
_EFF_D = "expansion SiLU of block6a = activated output of stage 5 (stride 1/16)"

DEPTH_TABLE: dict[str, dict[str, Tap]] = {
    "vgg19": {"deep": _t("block5_conv4", 16, 252, 20, 22, "relu", _VGG_D),
              "shallow": _t("block2_conv2", 2, 14, 5, 22, "relu", _VGG_S)},
    "vgg16": {"deep": _t("block5_conv3", 16, 196, 17, 19, "relu", _VGG_D),
              "shallow": _t("block2_conv2", 2, 14, 5, 19, "relu", _VGG_S)},
    "vgg16_torch": {"deep": _t("block5_conv3", 16, 196, 17, 19, "relu", _VGG_D + " (torchvision weights)"),
                    "shallow": _t("block2_conv2", 2, 14, 5, 19, "relu", _VGG_S + " (torchvision weights)")},
    "resnet50": {"deep": _t("conv4_block6_out", 16, 291, 142, 175, "relu", _RES_D),
                 "shallow": _t("conv2_block1_out", 4, 19, 18, 175, "relu", _RES_S)},
    "resnet152": {"deep": _t("conv4_block36_out", 16, 1315, 482, 515, "relu", _RES_D),
                  "shallow": _t("conv2_block1_out", 4, 19, 18, 515, "relu", _RES_S)},
    "resnet50v2": {"deep": _t("conv4_block6_preact_relu", 16, 259, 143, 190, "relu", _V2_D),
                   "shallow": _t("conv2_block2_preact_relu", 4, 19, 18, 190, "relu", _V2_S)},
    "resnet152v2": {"deep": _t("conv4_block36_preact_relu", 16, 1283, 517, 564, "relu", _V2_D),
                    "shallow": _t("conv2_block2_preact_relu", 4, 19, 18, 564, "relu", _V2_S)},
    "densenet121": {"deep": _t("pool4_relu", 16, 1031, 310, 427, "relu", _DN_D),
                    "shallow": _t("conv2_block2_0_relu", 4, 19, 15, 427, "relu", _DN_S)},
    "densenet201": {"deep": _t("pool4_relu", 16, 1799, 478, 707, "relu", _DN_D),
                    "shallow": _t("conv2_block2_0_relu", 4, 19, 15, 707, "relu", _DN_S)},
    "inception_v3": {"deep": _t("mixed7", 16, 927, 228, 311, "relu", "last 17x17 Inception block (stride ~1/16)"),
                     "shallow": _t("#9", 2, 11, 9, 311, "relu", "ReLU of the third stem conv (stride 1/2, RF 11)")},
    "convnext_tiny": {"deep": _t("convnext_tiny_stage_2_block_8_gelu", 16, 1096, 106, 133, "gelu", _CNX_D),
                      "shallow": _t("convnext_tiny_stage_0_block_0_gelu", 4, 28, 6, 133, "gelu", _CNX_S)},
    "convnext_small": {"deep": _t("convnext_small_stage_2_block_26_gelu", 16, 2824, 232, 259, "gelu", _CNX_D),
                       "shallow": _t("convnext_small_stage_0_block_0_gelu", 4, 28, 6, 259, "gelu", _CNX_S)},
    "efficientnetv2_b0": {"deep": _t("block6a_expand_activation", 16, 283, 151, 270, "silu", _EFF_D),
                          "shallow": _t("block2b_expand_activation", 4, 19, 16, 270, "silu",
                                        "expansion SiLU of block2b (first with RF >= 14, stride 1/4)")},
    "efficientnetv2_s": {"deep": _t("block6a_expand_activation", 16, 559, 289, 513, "silu", _EFF_D),
                         "shallow": _t("block2a_expand_activation", 4, 15, 16, 513, "silu",
                                       "expansion SiLU of block2a (first with RF >= 14, stride 1/4)")},
}


def canonical(backbone: str) -> str:
    """The table's key of ``backbone`` (aliases as :func:`srkeras.losses.backbones.backbone_spec`)."""
    from srkeras.losses.backbones import BACKBONES, backbone_spec

    try:
        spec = backbone_spec(backbone)
    except ValueError as e:
        raise StudyConfigError(str(e)) from None
    return next(k for k, v in BACKBONES.items() if v is spec)


def tap(backbone: str, depth: str = "deep") -> Tap:
    """The layer of ``backbone`` playing VGG54 (``deep``) or VGG22 (``shallow``)."""
    if depth not in DEPTHS:
        raise StudyConfigError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
    key = canonical(backbone)
    if key not in DEPTH_TABLE:
        raise StudyConfigError(f"backbone {backbone!r} has no row in the depth table; known: {', '.join(DEPTH_TABLE)}")
    return DEPTH_TABLE[key][depth]


def markdown_table() -> str:
    """The depth table as Markdown (for the README and the study's own notes)."""
    head = ("| backbone | role | layer | after | stride | RF (px) | depth (layer / layers) | why |\n"
            "|---|---|---|---|---|---|---|---|")
    rows = []
    for name, taps in DEPTH_TABLE.items():
        for depth in DEPTHS:
            t = taps[depth]
            rows.append(f"| {name} | {ROLE[depth]} ({depth}) | `{t.layer}` | {t.activation} | 1/{t.stride} | {t.rf} | "
                        f"{t.index}/{t.layers} ({t.relative_depth:.2f}) | {t.why} |")
    return "\n".join([head, *rows])


__all__ = ["DEPTHS", "DEPTH_TABLE", "ROLE", "Tap", "canonical", "markdown_table", "tap"]
