"""Model builders: generators, discriminators and the evaluation classifier.

Generators map z float32 [batch, latent_dim] (and, when conditional, label int [batch])
to images float32 [batch, 28, 28, 1] in [-1, 1]. Discriminators return one logit per image
[batch, 1]; with class heads also class logits [batch, num_classes] per head (AC-GAN's
auxiliary classifier, then TAC-GAN's twin).
"""
from __future__ import annotations

import contextlib

import keras
from keras import layers

from .config import ARCHITECTURES, D_DROPOUT
from .layers import SNConv2D, SNDense

# Keras' policy for each GanConfig.precision.
DTYPE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def _generator_inputs(latent_dim: int, num_classes: int):
    z = keras.Input((latent_dim,), name="z")
    if not num_classes:
        return [z], z
    label = keras.Input((), dtype="int32", name="label")
    # A learned embedding followed by Dense is a linear map of the one-hot label, without
    # the Lambda layer that a one-hot would need (and that .keras files refuse to load).
    embedded = layers.Embedding(num_classes, 32, name="label_embedding")(label)
    return [z, label], layers.Concatenate()([z, embedded])


def _finish(inputs, outputs, name):
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=name)


def mlp_generator(latent_dim: int, num_classes: int = 0) -> keras.Model:
    """The tutorial's generator: Dense 256-512-1024 (LeakyReLU 0.2, BatchNorm 0.8), tanh 784."""
    inputs, x = _generator_inputs(latent_dim, num_classes)
    for units in (256, 512, 1024):
        x = layers.Dense(units)(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.BatchNormalization(momentum=0.8)(x)
    x = layers.Dense(28 * 28, activation="tanh", dtype="float32")(x)
    return _finish(inputs, layers.Reshape((28, 28, 1), dtype="float32")(x), "mlp_generator")


def _channels(base: int, width: float) -> int:
    """`base` channels scaled by a width multiplier (at least 1)."""
    return max(1, round(base * width))


def _dense(units: int, spectral_norm: bool, **kwargs):
    return SNDense(units, **kwargs) if spectral_norm else layers.Dense(units, **kwargs)


def _conv(filters: int, kernel: int, spectral_norm: bool, **kwargs):
    return (SNConv2D(filters, kernel, **kwargs) if spectral_norm
            else layers.Conv2D(filters, kernel, **kwargs))


def mlp_discriminator(num_classes: int = 0, spectral_norm: bool = False,
                      width: float = 1.0, class_heads: int = 0) -> keras.Model:
    """The tutorial's discriminator: Flatten, Dense 512-256 (LeakyReLU 0.2), one output.

    The tutorial ends in a sigmoid; we return the logit and use the numerically stable
    from-logits cross-entropy, which is the same loss.
    """
    image = keras.Input((28, 28, 1), name="image")
    x = layers.Flatten()(image)
    for units in (512, 256):
        x = _dense(_channels(units, width), spectral_norm)(x)
        x = layers.LeakyReLU(0.2)(x)
    return _projection_head(image, x, num_classes, "mlp_discriminator", spectral_norm,
                            class_heads)


def dcgan_generator(latent_dim: int, num_classes: int = 0, width: float = 1.0) -> keras.Model:
    """Small DCGAN: Dense -> 7x7x128, ConvTranspose 64 and 32 (4x4, stride 2), Conv 1 tanh
    (channel counts times `width`).

    About 14 M multiply-adds per image at width 1: sized so that ~30 epochs of MNIST fit in
    45 minutes on 2 CPU cores; the cost grows with width squared.
    """
    inputs, x = _generator_inputs(latent_dim, num_classes)
    top = _channels(128, width)
    x = layers.Dense(7 * 7 * top, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((7, 7, top))(x)
    for filters in (_channels(64, width), _channels(32, width)):
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    # The image leaves in float32 whatever the layers compute in (mixed precision).
    x = layers.Conv2D(1, 3, padding="same", activation="tanh", dtype="float32")(x)
    return _finish(inputs, x, "dcgan_generator")


def dcgan_discriminator(num_classes: int = 0, spectral_norm: bool = False,
                        width: float = 1.0, dropout: float = D_DROPOUT,
                        class_heads: int = 0) -> keras.Model:
    """Conv 64 and 128 (4x4, stride 2, LeakyReLU 0.2, dropout; channels times `width`),
    flattened (spatial features kept, which conditional GANs need), then a linear +
    projection head. spectral_norm: every Conv and Dense divided by its largest singular
    value (Miyato et al. 2018)."""
    image = keras.Input((28, 28, 1), name="image")
    x = image
    for filters in (_channels(64, width), _channels(128, width)):
        x = _conv(filters, 4, spectral_norm, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    return _projection_head(image, x, num_classes, "dcgan_discriminator", spectral_norm,
                            class_heads)


def _projection_head(image, features, num_classes: int, name: str,
                     spectral_norm: bool = False, class_heads: int = 0) -> keras.Model:
    """logit = w.h (+ embed(label).h for conditional models: Miyato & Koyama 2018).

    class_heads (conditional only): 1 adds a linear head on the same features, class
    logits [batch, num_classes], as in AC-GAN (Odena et al. 2017); 2 adds a second such
    head, TAC-GAN's twin classifier (Gong et al. 2019), which the GAN trains on fakes.
    """
    if class_heads not in (0, 1, 2):
        raise ValueError(f"class_heads must be 0, 1 or 2, got {class_heads!r}")
    if class_heads and not num_classes:    # heads need labels: not dropped silently
        raise ValueError(f"class_heads {class_heads} needs a conditional discriminator")
    logit = _dense(1, spectral_norm)(features)
    if not num_classes:
        return keras.Model(image, logit, name=name)
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(num_classes, features.shape[-1])(label)
    projection = layers.Dot(axes=1)([embedded, features])
    outputs = layers.Add()([logit, projection])
    heads = ("class_logits", "twin_logits")[:class_heads]
    if heads:
        outputs = [outputs, *(_dense(num_classes, spectral_norm, name=head)(features)
                              for head in heads)]
    return keras.Model([image, label], outputs, name=name)


def build_gan_pair(arch: str, latent_dim: int, num_classes: int, *,
                   spectral_norm: bool = False, g_width: float = 1.0, d_width: float = 1.0,
                   d_dropout: float = D_DROPOUT, precision: str = "float32",
                   class_heads: int = 0):
    """(generator, discriminator) for one architecture. The MLP generator has no width
    option (it is the tutorial's); its discriminator does, but has no dropout.
    class_heads: the discriminator also classifies, with 1 or 2 heads (see
    _projection_head).

    precision "bfloat16": every layer computes in bfloat16 with float32 weights, except the
    generator's last layer (its image stays float32); the discriminator's logits are
    bfloat16 (the GAN casts them before its losses).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of "
                         f"{', '.join(ARCHITECTURES)}")
    with _dtype_policy(DTYPE_POLICIES[precision]):
        if arch == "mlp":
            return (mlp_generator(latent_dim, num_classes),
                    mlp_discriminator(num_classes, spectral_norm, d_width, class_heads))
        return (dcgan_generator(latent_dim, num_classes, g_width),
                dcgan_discriminator(num_classes, spectral_norm, d_width, d_dropout,
                                    class_heads))


def float32_copy(model: keras.Model) -> keras.Model:
    """`model` rebuilt with every layer in float32, holding the same weights (a mixed
    precision generator is saved and exported this way)."""
    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Layers made inside take `name` as their dtype policy (Keras' is global state)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def classifier(num_classes: int = 10, feature_dim: int = 128,
               arch: str = "cnn") -> keras.Model:
    """MNIST classifier for evaluation: two conv blocks, a `features` layer, softmax.

    Input float32 [batch, 28, 28, 1] in [0, 1]. Outputs (probabilities [batch, classes],
    features [batch, feature_dim]); the features feed the Frechet distance.

    arch "gap" is the second judge of bench/judge.py: a different network (5x5 then 3x3
    convs with batch norm, global average pooling, 96 features), so that a gain measured
    by one judge can be checked by another that does not share its blind spots.
    """
    if arch == "gap":
        return _gap_classifier(num_classes)
    image = keras.Input((28, 28, 1), name="image")
    x = image
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    features = layers.Dense(feature_dim, activation="relu", name="features")(x)
    x = layers.Dropout(0.5)(features)
    probs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(image, [probs, features], name="classifier")


def _gap_classifier(num_classes: int, feature_dim: int = 96) -> keras.Model:
    image = keras.Input((28, 28, 1), name="image")
    x = image
    for filters, kernel in ((32, 5), (64, 3), (128, 3)):
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if filters < 128:
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    features = layers.Dense(feature_dim, activation="relu", name="features")(x)
    x = layers.Dropout(0.3)(features)
    probs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(image, [probs, features], name="classifier_gap")
