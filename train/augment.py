"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) of discriminator inputs.

The same random transform family is applied to real and generated images, every time the
discriminator sees them (in its own step and in the generator's), so the generator cannot
learn the augmentations: they only make the discriminator's task harder to memorize.
Every draw is stateless, from a seed derived from (run seed, step, call): a resumed run
augments exactly as an uninterrupted one.

Images are float32 [b, 28, 28, 1] in [-1, 1]; -1 is the background.
"""
from __future__ import annotations

import tensorflow as tf

TRANSLATION_RATIO = 0.125    # shifts of up to 1/8 of the side, as the paper
CUTOUT_RATIO = 0.5           # a square of half the side, as the paper


def _uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float32):
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval,
                                       dtype=dtype)


def _color(x, seed):
    b = tf.shape(x)[0]
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    # On [-1, 1] images: brightness +-1 and contrast x0.5..1.5 (the paper's, on [0, 1]
    # with a doubled brightness range), per image.
    x = x + (_uniform([b, 1, 1, 1], s1) - 0.5) * 2.0
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (_uniform([b, 1, 1, 1], s2) + 0.5) + mean


def _translation(x, seed):
    b, size = tf.shape(x)[0], x.shape[1]
    pad = int(size * TRANSLATION_RATIO + 0.5)
    shift = _uniform([b, 2], seed, -pad, pad + 1, dtype=tf.int32)
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=-1.0)
    grid = tf.range(size)[None, :] + pad                                   # [1, size]
    rows = tf.gather(padded, grid - shift[:, :1], axis=1, batch_dims=1)
    return tf.gather(rows, grid - shift[:, 1:], axis=2, batch_dims=1)


def _cutout(x, seed):
    b, size = tf.shape(x)[0], x.shape[1]
    cut = int(size * CUTOUT_RATIO + 0.5)
    centre = _uniform([b, 2], seed, 0, size, dtype=tf.int32)
    grid = tf.range(size)[None, :]
    outside_y = tf.abs(grid - centre[:, :1]) * 2 >= cut                   # [b, size]
    outside_x = tf.abs(grid - centre[:, 1:]) * 2 >= cut
    keep = tf.logical_or(outside_y[:, :, None], outside_x[:, None, :])
    # The cut square becomes background.
    return tf.where(keep[..., None], x, -1.0)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x, policy: tuple[str, ...], seed):
    """x augmented by each part of `policy` in order; seed: int64 [2] (stateless)."""
    if not policy:
        return x
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, len(policy)))
    for name, part_seed in zip(policy, seeds, strict=True):
        x = _OPS[name](x, part_seed)
    return x
