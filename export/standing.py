"""Standing statistics (BigGAN, Brock et al. 2019, "standing stats"): a generator's
BatchNormalization statistics measured on its own samples, in place of the moving averages
that training left in it.

Why: the exported generator is the EMA of the training generator's weights, but its
BatchNorm moving mean and variance are the EMA of the *training* generator's running batch
statistics -- activations of other weights, averaged with a lag. Measured on the EMA
generator's own activations they describe what it actually computes. The change is small
per channel (about 1 % of the variances), but measurable in sample quality (README,
"Standing statistics"). Nothing else of the model changes, and the export's parity check
compares ONNX against the recalibrated Keras model.

The samples are latents z ~ N(0, 1) [n, latent_dim] and, for conditional models, labels
drawn uniformly from the classes: the distribution `ganlite generate` draws from.
"""
from __future__ import annotations

import numpy as np

from .errors import ExportError

# Second half of the latents' seed: disjoint from the training run's own streams.
_SALT = 0x5354_414E   # "STAN"
# Images per forward pass while measuring (memory: batch x the widest BatchNorm input).
_BATCH = 1_000


def batchnorm_layers(model) -> list:
    """The model's BatchNormalization layers, inputs first (functional order)."""
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def standing_latents(latent_dim: int, num_classes: int, samples: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The samples' inputs: z float32 [samples, latent_dim] ~ N(0, 1) and, when
    num_classes > 0, labels int32 [samples] uniform over the classes (else None)."""
    rng = np.random.default_rng([seed, _SALT])
    z = rng.standard_normal((samples, latent_dim), dtype=np.float32)
    labels = rng.integers(0, num_classes, samples).astype(np.int32) if num_classes else None
    return z, labels


def standing_statistics(model, latent_dim: int, num_classes: int, samples: int,
                        seed: int) -> int:
    """Set every BatchNormalization layer's moving mean and variance of generator `model`
    (inputs z [b, latent_dim] float32, + label [b] int when num_classes > 0) to the mean
    and (biased, as in training) variance of its inputs over `samples` samples; return the
    number of layers set. Layers are measured in order, each with the earlier ones already
    set, so every layer sees the activations of the final model. Deterministic in
    (model, samples, seed).

    Raises:
        ExportError: the model has no BatchNormalization layer.
    """
    import keras

    layers = batchnorm_layers(model)
    if not layers:
        raise ExportError(f"{model.name}: no BatchNormalization layer, so no statistics "
                          f"to recompute (standing_stats needs one)")
    z, labels = standing_latents(latent_dim, num_classes, samples, seed)
    for layer in layers:
        probe = keras.Model(model.inputs, layer.input)
        total = total_sq = 0.0
        for start in range(0, samples, _BATCH):
            batch = slice(start, start + _BATCH)
            feeds = [z[batch]] if labels is None else [z[batch], labels[batch]]
            acts = keras.ops.convert_to_numpy(probe(feeds, training=False)).astype(np.float64)
            axes = tuple(range(acts.ndim - 1))       # every axis but the channels
            total = total + acts.sum(axes)
            total_sq = total_sq + np.square(acts).sum(axes)
        count = samples * int(np.prod(acts.shape[1:-1]))     # values per channel
        mean = total / count
        variance = np.maximum(total_sq / count - np.square(mean), 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return len(layers)
