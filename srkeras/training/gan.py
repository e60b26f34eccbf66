"""Adversarial training (SRGAN, ESRGAN) as a ``keras.Model`` with its own ``train_step``.

One step (one D update per G update, as both papers):

* SR = G(LR); real = D(HR), fake = D(SR) (both in training mode);
* generator loss  L_G = sum_k w_k L_k(HR, SR) + lambda * L_adv^G(real, fake)
  (SRGAN eq. 3: VGG54 + 1e-3 * -log D(G(LR)); ESRGAN eq. 3: L_percep + 5e-3 * L_G^Ra + 1e-2 * L1);
* discriminator loss L_D(real, fake) (SRGAN eq. 2 / ESRGAN eq. 1);
* both gradients are taken from the same forward pass: D's weights are not changed by the G update,
  and L_D only reaches D's variables, so this equals the usual G-step-then-D-step (BasicSR) with
  SR detached for D.

Losses are per-replica means divided by the replica count (see :mod:`.supervised`). The relativistic
average GAN (ESRGAN) compares each logit with the mean logit of the other class over the *global*
batch, so multi-GPU ESRGAN is the single-GPU ESRGAN (see :func:`ragan_losses`). Mixed precision: pass ``keras.optimizers.LossScaleOptimizer`` for both;
each scales its own loss.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from srkeras.losses import adversarial
from srkeras.training.supervised import LossTerms, Trainer, match_target, num_replicas, scale_gradients


def _replica_mean(values):
    """Mean of each value over all replicas (forward only: no gradient flows through the all-reduce)."""
    m = ops.stop_gradient(ops.stack(values))
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        m = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, m)
    return [m[i] for i in range(len(values))]


def ragan_losses(real, fake):
    """ESRGAN eq. 1-2, D_Ra(a, b) = sigmoid(C(a) - E_b[C(b)]), E over the *global* batch:

        L_D = E[softplus(E[C_f] - C_r)] + E[softplus(C_f - E[C_r])]
        L_G = E[softplus(C_r - E[C_f])] + E[softplus(E[C_r] - C_f)]   (C_r held constant for G)

    Returns (L_G, L_D, G surrogate, D surrogate), per-replica. The batch means E[C] couple replicas.
    Rather than differentiating through an all-reduce (whose gradient collectives replicas may create
    in different orders), the means enter as constants and the chain-rule term through them is added
    back exactly: with A = mean over replicas of dL_r/dE[C], the surrogate L + A * mean_local(C) has
    the same gradient, summed over replicas, as the global-batch loss. With one replica this is plain
    autodiff of L.
    """
    mean_real, mean_fake = _replica_mean([ops.mean(real), ops.mean(fake)])
    d = ops.mean(ops.softplus(mean_fake - real)) + ops.mean(ops.softplus(fake - mean_real))
    g = ops.mean(ops.softplus(ops.stop_gradient(real) - mean_fake)) + ops.mean(ops.softplus(mean_real - fake))
    # Sensitivities of the local losses to the two means (analytic: d softplus(x)/dx = sigmoid(x)).
    a_d_fake, a_d_real, a_g_fake = _replica_mean(
        [
            ops.mean(ops.sigmoid(mean_fake - real)),
            -ops.mean(ops.sigmoid(fake - mean_real)),
            -ops.mean(ops.sigmoid(real - mean_fake)),
        ]
    )
    d_surrogate = d + a_d_fake * ops.mean(fake) + a_d_real * ops.mean(real)
    g_surrogate = g + a_g_fake * ops.mean(fake)
    return g, d, g_surrogate, d_surrogate


class GANTrainer(Trainer):
    """``compile(g_optimizer=..., d_optimizer=...)`` then ``fit`` on (LR, HR) batches."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        content: LossTerms,
        adversarial_kind: str = "standard",
        adversarial_weight: float = 1e-3,
        ema=None,
        lr_multipliers=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if adversarial_kind not in adversarial.KINDS:
            raise ValueError(f"unknown adversarial loss {adversarial_kind!r}; choose from {adversarial.KINDS}")
        self.generator = generator
        self.discriminator = discriminator
        self.content = content
        self.adversarial_kind = adversarial_kind
        self.adversarial_weight = float(adversarial_weight)
        self.ema = ema
        self.lr_multipliers = dict(lr_multipliers or {})

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def adversarial_losses(self, real, fake):
        """(L_G, L_D, what to differentiate for G, for D)."""
        if self.adversarial_kind == "ragan":
            return ragan_losses(real, fake)
        g = adversarial.generator_loss(self.adversarial_kind, real, fake)
        d = adversarial.discriminator_loss(self.adversarial_kind, real, fake)
        return g, d, g, d

    def train_step(self, data):
        lr, hr = data
        r = num_replicas()
        with tf.GradientTape(persistent=True) as tape:
            sr = ops.cast(self.generator(lr, training=True), "float32")
            hr = match_target(ops.cast(hr, "float32"), sr)
            real = ops.cast(self.discriminator(hr, training=True), "float32")
            fake = ops.cast(self.discriminator(sr, training=True), "float32")
            content, parts = self.content(hr, sr)
            g_adv, d_loss, g_adv_grad, d_loss_grad = self.adversarial_losses(real, fake)
            g_loss = content + self.adversarial_weight * g_adv
            g_scaled = self.g_optimizer.scale_loss((content + self.adversarial_weight * g_adv_grad) / r)
            d_scaled = self.d_optimizer.scale_loss(d_loss_grad / r)
        # Backward one chain at a time. With synchronised BatchNorm every all-reduce has an all-reduce
        # as gradient, and all replicas must create those in the same order; TensorFlow's tape visits
        # independent branches (D(HR) and D(SR)) in an order that can differ between replicas.
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        zero = tf.UnconnectedGradients.ZERO
        d_sr = tape.gradient(g_scaled, sr, unconnected_gradients=zero)
        g_grads = tape.gradient(sr, g_vars, output_gradients=d_sr, unconnected_gradients=zero)
        d_real, d_fake = tape.gradient(d_scaled, [real, fake], unconnected_gradients=zero)
        from_real = tape.gradient(real, d_vars, output_gradients=d_real, unconnected_gradients=zero)
        from_fake = tape.gradient(fake, d_vars, output_gradients=d_fake, unconnected_gradients=zero)
        del tape
        d_grads = [a + b for a, b in zip(from_real, from_fake)]
        g_grads = scale_gradients(g_grads, g_vars, self.lr_multipliers)
        self.g_optimizer.apply(g_grads, g_vars)
        self.d_optimizer.apply(d_grads, d_vars)
        if self.ema is not None:
            self.ema.update()
        return self.global_logs({
            "loss": g_loss,
            "d_loss": d_loss,
            "g_adv": g_adv,
            "d_real": ops.mean(ops.sigmoid(real)),
            "d_fake": ops.mean(ops.sigmoid(fake)),
            **parts,
        })
