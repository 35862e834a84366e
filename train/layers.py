"""Spectrally normalized Dense and Conv2D for the discriminator (Miyato et al. 2018).

The kernel is divided by an estimate of its largest singular value in the forward pass
(a reparametrization: gradients flow through the division, u and v are constants, as in
the paper). Keras' own SpectralNormalization wrapper instead overwrites the stored kernel
with the normalized one at each training call, so the optimizer never sees the division.
One power iteration per training call refines the estimate u (a non-trainable weight, in
the checkpoint); inference calls use u as it stands.
"""
from __future__ import annotations

import keras
from keras import layers, ops


def _l2_normalize(x):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + 1e-12)


class _SpectralNorm:
    """Mixin: `self.sn_u` and `normalized_kernel(training)` for a layer with `kernel`."""

    kernel: keras.Variable

    def _build_u(self, units: int) -> None:
        self.sn_u = self.add_weight(  # type: ignore[attr-defined]
            shape=(1, units), initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False, name="sn_u")

    def normalized_kernel(self, training):
        w = ops.reshape(self.kernel, (-1, self.kernel.shape[-1]))     # [fan_in, units]
        u = self.sn_u.value
        v = _l2_normalize(ops.matmul(u, ops.transpose(w)))            # [1, fan_in]
        u = _l2_normalize(ops.matmul(v, w))                           # [1, units]
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        if training:
            self.sn_u.assign(u)
        sigma = ops.sum(ops.matmul(v, w) * u)
        return self.kernel / sigma


class SNDense(_SpectralNorm, layers.Dense):
    """Dense whose kernel is spectrally normalized."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_u(self.units)

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.normalized_kernel(training))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x


class SNConv2D(_SpectralNorm, layers.Conv2D):
    """Conv2D (channels last) whose kernel is spectrally normalized."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_u(self.filters)

    def call(self, inputs, training=None):
        x = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            x = ops.add(x, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return self.activation(x) if self.activation is not None else x
