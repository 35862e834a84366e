"""The GAN as a keras.Model: one train_step, two optimizers, an EMA of the generator.

Randomness in the step is stateless and derived from (seed, step), so that a run resumed
from a checkpoint draws exactly the latents an uninterrupted run would have drawn.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .augment import diff_augment
from .config import LOSSES
from .distribute import in_global_batch, replica_rows, replica_share

# First halves of the stateless seeds of the augmentations: disjoint from the latents'
# (the run seed, < 2**32), one per call of the discriminator in a step.
_AUGMENT_SALT = 2**33


class GAN(keras.Model):
    """GAN on logits: the non-saturating loss (Goodfellow et al. 2014) or the hinge loss
    (Lim & Ye 2017; Miyato et al. 2018), optionally an R1 penalty on real images
    (Mescheder et al. 2018), differentiable augmentation of every discriminator input, and
    top-k training (Sinha et al. 2020): the generator's loss over only the fakes that the
    discriminator rates most real, a fraction of the batch that starts at 1 and decays by
    `top_k_decay` per epoch (`steps_per_epoch` steps) down to `top_k`.

    aux_class_weight > 0 (conditional models whose discriminator has a class head): an
    AC-GAN auxiliary classification loss (Odena et al. 2017), its cross-entropy times the
    weight added to D's loss on real images only and to G's loss on its fakes, each fake
    to be classified as the label it was made for. D learns to classify real images only:
    trained on fakes too, the two networks would cooperate on making fakes easy to
    classify. G's term alone still favours easily classified fakes (Shu et al. 2017), which
    a large weight shows as on-label rates above real images' and lower recall.

    twin_classifier (with aux_class_weight; D has a second class head): TAC-GAN (Gong et
    al. 2019). The twin head learns to classify fakes by the labels they were made for (D's
    loss adds the weight times its cross-entropy on fakes), and G's class loss becomes the
    class head's cross-entropy minus the twin's: G is no longer paid for fakes that are
    merely easier to classify than real images, only for fakes of its label that look like
    real images of it.

    Batches are (images float32 [b, 28, 28, 1] in [-1, 1], labels int32 [b], step int64).
    """

    def __init__(self, generator, discriminator, latent_dim: int, num_classes: int,
                 seed: int, ema_decay: float, loss: str = "ns", r1_gamma: float = 0.0,
                 augment: tuple[str, ...] = (), top_k: float = 1.0,
                 top_k_decay: float = 0.99, steps_per_epoch: int = 1,
                 aux_class_weight: float = 0.0, twin_classifier: bool = False, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.loss_name = loss
        self.r1_gamma = r1_gamma
        self.augment = tuple(augment)
        self.top_k = top_k
        self.top_k_decay = top_k_decay
        self.steps_per_epoch = steps_per_epoch
        if twin_classifier and not aux_class_weight:
            raise ValueError("twin_classifier needs aux_class_weight > 0")
        heads = (2 if twin_classifier else 1) if aux_class_weight else 0
        if len(discriminator.outputs) != 1 + heads:
            raise ValueError(f"the discriminator has {len(discriminator.outputs) - 1} class "
                             f"heads; these losses need {heads} "
                             f"(build_gan_pair(..., class_heads={heads}))")
        self.aux_class_weight = aux_class_weight
        self.twin_classifier = twin_classifier
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
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")
        self.twin_loss_tracker = keras.metrics.Mean(name="twin_loss")

    def build_optimizers(self):
        """Create optimizer slots now, so that a checkpoint can be restored before step 1."""
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker,
                    self.d_real_tracker, self.d_fake_tracker]
        if self.aux_class_weight:
            trackers.append(self.class_loss_tracker)
        if self.twin_classifier:
            trackers.append(self.twin_loss_tracker)
        return trackers

    def _inputs(self, z, labels):
        return [z, labels] if self.num_classes else z

    def _disc(self, images, labels, step, call: int, slot=None):
        """(logits float32 [b, 1], class logits float32 [b, classes] or None, twin class
        logits float32 [b, classes] or None)."""
        if self.augment:
            seed = tf.stack([tf.constant(_AUGMENT_SALT * (call + 1), tf.int64)
                             + tf.cast(self.seed, tf.int64), step])
            if slot is None:
                images = diff_augment(images, self.augment, seed)
            else:   # a replica's rows of the whole batch's augmentation
                images = in_global_batch(
                    lambda x: diff_augment(x, self.augment, seed), images, slot)
        outputs = self.discriminator(self._inputs(images, labels), training=True)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        logits, *heads = outputs
        class_logits, twin_logits = [*heads, None, None][:2]
        # bfloat16 under mixed precision
        return tuple(None if x is None else tf.cast(x, tf.float32)
                     for x in (logits, class_logits, twin_logits))

    def _class_loss(self, class_logits, labels):
        """Mean cross-entropy of the class head against the labels."""
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=class_logits))

    def _d_loss(self, real_logits, fake_logits):
        if self.loss_name == "hinge":
            return (tf.reduce_mean(tf.nn.relu(1.0 - real_logits))
                    + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits)))
        return tf.reduce_mean(tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits))

    def _g_loss(self, fake_logits):
        if self.loss_name == "hinge":
            return -tf.reduce_mean(fake_logits)
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))

    def _best_fakes(self, fake_logits, step):
        """The logits [k] of the k fakes the discriminator rates most real, k the kept
        fraction of the batch at this step (rounded up); all of them when top-k is off."""
        logits = tf.reshape(fake_logits, [-1])
        if self.top_k >= 1.0:
            return logits
        epoch = tf.cast(step // self.steps_per_epoch, tf.float64)
        kept = tf.maximum(tf.constant(self.top_k, tf.float64),
                          tf.pow(tf.constant(self.top_k_decay, tf.float64), epoch))
        count = tf.cast(tf.math.ceil(kept * tf.cast(tf.size(logits), tf.float64)), tf.int32)
        return tf.math.top_k(logits, k=tf.maximum(count, 1), sorted=False).values

    def _latents(self, batch, step, salt, slot=None):
        seed = tf.stack([tf.cast(self.seed, tf.int64), step * 2 + salt])
        if slot is not None:    # one replica's rows of the whole batch's latents
            return replica_rows(seed, batch, self.latent_dim, slot)
        return tf.random.stateless_normal((batch, self.latent_dim), seed=seed)

    def train_step(self, data):
        # Under a tf.distribute strategy (train/distribute.py) a 4th item says which
        # slice of the global batch this replica holds.
        real_images, labels, step = data[:3]
        slot = data[3] if len(data) > 3 else None
        batch = tf.shape(real_images)[0]
        step = tf.cast(step, tf.int64)

        z = self._latents(batch, step, 0, slot)
        fake_images = self.generator(self._inputs(z, labels), training=True)
        with tf.GradientTape() as tape:
            if self.r1_gamma:
                # R1: gamma/2 * E ||grad_x D(x)||^2 on (augmented) real images.
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(real_images)
                    real_logits, real_classes, _ = self._disc(real_images, labels, step,
                                                              0, slot)
                    logit_sum = tf.reduce_sum(real_logits)
                slopes = r1_tape.gradient(logit_sum, real_images)
                penalty = 0.5 * self.r1_gamma * tf.reduce_mean(
                    tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))
            else:
                real_logits, real_classes, _ = self._disc(real_images, labels, step, 0,
                                                          slot)
                penalty = 0.0
            fake_logits, _, fake_twins = self._disc(fake_images, labels, step, 1, slot)
            d_loss = self._d_loss(real_logits, fake_logits)
            d_total = d_loss + penalty if self.r1_gamma else d_loss
            if self.aux_class_weight:
                class_loss = self._class_loss(real_classes, labels)
                d_total += self.aux_class_weight * class_loss
            if self.twin_classifier:    # the twin learns the fakes' labels
                twin_loss = self._class_loss(fake_twins, labels)
                d_total += self.aux_class_weight * twin_loss
            d_share = replica_share(d_total)    # d_total itself on one device
        grads = tape.gradient(d_share, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_variables, strict=True))

        z = self._latents(batch, step, 1, slot)
        with tf.GradientTape() as tape:
            fake_images = self.generator(self._inputs(z, labels), training=True)
            fake_logits_g, fake_classes, fake_twins_g = self._disc(fake_images, labels, step,
                                                                   2, slot)
            g_loss = self._g_loss(self._best_fakes(fake_logits_g, step))
            g_total = g_loss
            if self.aux_class_weight:
                g_total += self.aux_class_weight * self._class_loss(fake_classes, labels)
            if self.twin_classifier:    # minus what merely makes fakes easy to classify
                g_total -= self.aux_class_weight * self._class_loss(fake_twins_g, labels)
            g_share = replica_share(g_total)
        grads = tape.gradient(g_share, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(
            zip(grads, self.generator.trainable_variables, strict=True))

        for ema_var, var in zip(self.ema_generator.variables, self.generator.variables,
                                   strict=True):
            ema_var.assign(self.ema_decay * ema_var + (1.0 - self.ema_decay) * var)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        if self.aux_class_weight:   # D's classification loss on real images
            self.class_loss_tracker.update_state(class_loss)
        if self.twin_classifier:    # the twin's on fakes
            self.twin_loss_tracker.update_state(twin_loss)
        # Per-step losses go to the metrics log; the trackers give the running means.
        return {"d_loss": d_loss, "g_loss": g_loss,
                **{m.name + "_mean": m.result() for m in self.metrics}}

    def checkpoint_variables(self):
        """Every variable a resumed run needs, in a fixed order."""
        return (self.generator.variables + self.discriminator.variables
                + self.ema_generator.variables
                + self.d_optimizer.variables + self.g_optimizer.variables)
