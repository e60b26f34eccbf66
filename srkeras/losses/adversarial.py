"""GAN losses on discriminator *logits* (pre-sigmoid outputs), averaged over all elements.

Let r = D logits on real HR images, f = on generated images, sp(t) = softplus(t) = -log sigmoid(-t)
(numerically stable for any logit), E = mean over the batch (and patch positions, if any).

* ``standard`` (Goodfellow et al. 2014; SRGAN, Ledig et al. 2017 eqs. 2 and 6):
  L_D = -E log D(x_r) - E log(1 - D(x_f)) = E sp(-r) + E sp(f);
  L_G = -E log D(G(x)) = E sp(-f)   (non-saturating generator loss, SRGAN eq. 6).
* ``ragan`` relativistic average GAN (Jolicoeur-Martineau 2018; ESRGAN, Wang et al. 2018 eqs. 1-2):
  D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)]), so with a = r - E f and b = f - E r:
  L_D = -E log D_Ra(x_r, x_f) - E log(1 - D_Ra(x_f, x_r)) = E sp(-a) + E sp(b);
  L_G = -E log(1 - D_Ra(x_r, x_f)) - E log D_Ra(x_f, x_r) = E sp(a) + E sp(-b).
  These are the paper's sums; the official ESRGAN/BasicSR code halves both (average of the two
  terms), so its lambda = 5e-3 corresponds to 2.5e-3 with these losses.
* ``lsgan`` (Mao et al. 2017, a=0, b=c=1, on raw outputs): L_D = (E (r-1)^2 + E f^2) / 2;
  L_G = E (f-1)^2 / 2.
* ``hinge`` (Lim & Ye 2017; Miyato et al. 2018): L_D = E relu(1 - r) + E relu(1 + f); L_G = -E f.
"""

from __future__ import annotations

from keras import ops

KINDS = ("standard", "ragan", "lsgan", "hinge")


def _check(kind):
    if kind not in KINDS:
        raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {KINDS}")


def _f32(x):
    return None if x is None else ops.cast(x, "float32")


def _need(x, kind, which):
    if x is None:
        raise ValueError(f"{kind} loss needs {which} logits")
    return x


def discriminator_loss(kind: str, real_logits, fake_logits):
    """Discriminator loss (scalar) for ``kind`` in standard | ragan | lsgan | hinge; see module doc."""
    _check(kind)
    r, f = _f32(_need(real_logits, kind, "real")), _f32(_need(fake_logits, kind, "fake"))
    if kind == "standard":
        return ops.mean(ops.softplus(-r)) + ops.mean(ops.softplus(f))
    if kind == "ragan":
        a, b = r - ops.mean(f), f - ops.mean(r)
        return ops.mean(ops.softplus(-a)) + ops.mean(ops.softplus(b))
    if kind == "lsgan":
        return 0.5 * ops.mean(ops.square(r - 1.0)) + 0.5 * ops.mean(ops.square(f))
    return ops.mean(ops.relu(1.0 - r)) + ops.mean(ops.relu(1.0 + f))


def generator_loss(kind: str, real_logits, fake_logits):
    """Generator adversarial loss (scalar); ``real_logits`` is only used (and required) by ``ragan``.

    Real logits are treated as constants (stop_gradient): the generator gradient flows through the
    fake logits only.
    """
    _check(kind)
    f = _f32(_need(fake_logits, kind, "fake"))
    if kind == "standard":
        return ops.mean(ops.softplus(-f))
    if kind == "ragan":
        r = ops.stop_gradient(_f32(_need(real_logits, kind, "real")))
        a, b = r - ops.mean(f), f - ops.mean(r)
        return ops.mean(ops.softplus(a)) + ops.mean(ops.softplus(-b))
    if kind == "lsgan":
        return 0.5 * ops.mean(ops.square(f - 1.0))
    return -ops.mean(f)
