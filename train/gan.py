"""The GAN as a keras.Model: one train_step, two optimizers, an EMA of the generator.

Randomness in the step is stateless and derived from (seed, step), so that a run resumed
from a checkpoint draws exactly the latents an uninterrupted run would have drawn.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class GAN(keras.Model):
    """Non-saturating GAN (Goodfellow et al. 2014) on logits.

    Batches are (images float32 [b, 28, 28, 1] in [-1, 1], labels int32 [b], step int64).
    """

    def __init__(self, generator, discriminator, latent_dim: int, num_classes: int,
                 seed: int, ema_decay: float, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        # Sampling from an exponential moving average of G's weights (Yazici et al. 2019)
        # removes much of the step-to-step jitter of GAN training at no training cost.
        self.ema_generator = keras.models.clone_model(generator)
        self.ema_generator.set_weights(generator.get_weights())
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.seed = seed
        self.ema_decay = ema_decay

    def compile(self, d_optimizer, g_optimizer, jit_compile=False):
        super().compile(jit_compile=jit_compile)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")

    def build_optimizers(self):
        """Create optimizer slots now, so that a checkpoint can be restored before step 1."""
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker,
                self.d_real_tracker, self.d_fake_tracker]

    def _inputs(self, z, labels):
        return [z, labels] if self.num_classes else z

    def _disc(self, images, labels):
        return self.discriminator(self._inputs(images, labels), training=True)

    def _latents(self, batch, step, salt):
        seed = tf.stack([tf.cast(self.seed, tf.int64), step * 2 + salt])
        return tf.random.stateless_normal((batch, self.latent_dim), seed=seed)

    def train_step(self, data):
        real_images, labels, step = data
        batch = tf.shape(real_images)[0]
        step = tf.cast(step, tf.int64)

        z = self._latents(batch, step, 0)
        fake_images = self.generator(self._inputs(z, labels), training=True)
        with tf.GradientTape() as tape:
            real_logits = self._disc(real_images, labels)
            fake_logits = self._disc(fake_images, labels)
            d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits))
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_variables, strict=True))

        z = self._latents(batch, step, 1)
        with tf.GradientTape() as tape:
            fake_images = self.generator(self._inputs(z, labels), training=True)
            g_loss = tf.reduce_mean(tf.nn.softplus(-self._disc(fake_images, labels)))
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(
            zip(grads, self.generator.trainable_variables, strict=True))

        for ema_var, var in zip(self.ema_generator.variables, self.generator.variables,
                                   strict=True):
            ema_var.assign(self.ema_decay * ema_var + (1.0 - self.ema_decay) * var)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        # Per-step losses go to the metrics log; the trackers give the running means.
        return {"d_loss": d_loss, "g_loss": g_loss,
                **{m.name + "_mean": m.result() for m in self.metrics}}

    def checkpoint_variables(self):
        """Every variable a resumed run needs, in a fixed order."""
        return (self.generator.variables + self.discriminator.variables
                + self.ema_generator.variables
                + self.d_optimizer.variables + self.g_optimizer.variables)
