"""The cost of a full study from multiply-accumulates (MACs), for planning on hardware not at hand.

MACs of a model are counted from its layers' shapes (Conv2D: ``kh*kw*cin/groups*cout`` per output
pixel, DepthwiseConv2D: ``kh*kw*cin*multiplier``, Dense: ``in*out`` per position); BN, activations,
pooling and additions are left out (a few % of the total). One training step of SRGAN costs

* generator: forward + backward (~3x forward) on ``batch`` LR patches;
* content loss: backbone forward on ``2*batch`` HR-size images (SR and HR) up to the tapped layer,
  backward through the SR half (~1x forward: input gradients only, the backbone is frozen);
* discriminator: its update (forward on ``2*batch``, backward ~2x forward) plus the generator's
  adversarial term (forward + input-gradient backward on ``batch``, ~2x forward).

FLOPs = 2 x MACs. Seconds = FLOPs / sustained FLOP/s; the sustained rate of a GPU on these small
convolutions is a fraction of its peak (assume ~25-35% of the dense peak; measure with the cost
probe, ``pipelines.study backbones`` prints it before training).
"""

from __future__ import annotations

from dataclasses import dataclass


def _macs_of_layer(layer) -> int:
    import keras

    if isinstance(layer, keras.Model):
        return sum(_macs_of_layer(inner) for inner in layer.layers)
    try:
        out = layer.output.shape
    except (AttributeError, ValueError):
        return 0
    pixels = 1
    for d in out[1:-1]:
        pixels *= int(d)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return kh * kw * int(layer.input.shape[-1]) * layer.depth_multiplier * pixels
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        return kh * kw * int(layer.input.shape[-1]) // layer.groups * layer.filters * pixels
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1]) * layer.units * pixels
    return 0


def model_macs(model, upto: str | None = None) -> int:
    """MACs of one forward pass of a built model (fixed input size), up to layer ``upto`` (name)."""
    total = 0
    for layer in model.layers:
        total += _macs_of_layer(layer)
        if upto is not None and layer.name == upto:
            break
    return total


def backbone_macs(backbone: str, depth: str = "deep", size: int = 96) -> int:
    """MACs of the content loss's backbone up to its depth-table layer on a ``size`` x ``size`` image."""
    import keras

    from srkeras.losses.backbones import backbone_spec
    from srkeras.losses.features import layer_name
    from srkeras.study.layers import tap

    spec = backbone_spec(backbone)
    model = getattr(keras.applications, spec.constructor)(include_top=False, weights=None, input_shape=(size, size, 3))
    return model_macs(model, layer_name(model, tap(backbone, depth).layer))


@dataclass(frozen=True)
class StepCost:
    generator: int  # MACs of one forward on one LR patch
    backbone: int  # ... of the backbone on one HR patch
    discriminator: int  # ... of the discriminator on one HR patch

    def gan_step_flops(self, batch: int) -> float:
        macs = 3 * batch * self.generator + (2 * batch + batch) * self.backbone
        macs += 3 * 2 * batch * self.discriminator + 2 * batch * self.discriminator
        return 2.0 * macs

    def mse_step_flops(self, batch: int) -> float:
        return 2.0 * 3 * batch * self.generator


def srgan_parts(scale: int = 4, hr_patch: int = 96) -> tuple[int, int]:
    """(generator MACs per LR patch, discriminator MACs per HR patch) of the paper-size SRGAN."""
    from srkeras import models

    lr = hr_patch // scale
    g = models.build("srresnet", scale=scale)
    import keras

    g_fixed = keras.Model.from_config(_fixed_input(g.get_config(), lr))
    d = models.build("srgan_discriminator", input_size=hr_patch)
    return model_macs(g_fixed), model_macs(d)


def _fixed_input(config: dict, side: int) -> dict:
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"].get("batch_shape") or layer["config"].get("batch_input_shape")
            layer["config"]["batch_shape"] = (shape[0], side, side, shape[-1])
            layer["config"].pop("batch_input_shape", None)
    return config


def full_run(backbones, depth: str = "deep", steps: int = 200_000, pretrain_steps: int = 1_000_000, batch: int = 16,
             hr_patch: int = 96, tflops: float = 30.0) -> dict:
    """Estimated hours of a paper-size study on a device sustaining ``tflops`` TFLOP/s."""
    g, d = srgan_parts(4, hr_patch)
    rate = tflops * 1e12
    out = {"srresnet_mse": {"gflops_per_step": StepCost(g, 0, d).mse_step_flops(batch) / 1e9, "steps": pretrain_steps}}
    for b in backbones:
        name, _, dep = b.partition(":")
        cost = StepCost(g, backbone_macs(name, dep or depth, hr_patch), d)
        out[f"{name}-{dep or depth}"] = {"gflops_per_step": cost.gan_step_flops(batch) / 1e9, "steps": steps}
    for v in out.values():
        v["hours"] = v["gflops_per_step"] * 1e9 * v["steps"] / rate / 3600
    return out


__all__ = ["StepCost", "backbone_macs", "full_run", "model_macs", "srgan_parts"]
