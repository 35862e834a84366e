"""Keras -> ONNX with tf2onnx, through a tf.function with an explicit input signature
(tf2onnx.convert.from_keras fails on Keras 3 models), and the Keras/onnxruntime parity check.

Generator graph:  z float32 [batch, latent_dim] (+ label int64 [batch])
                  -> image uint8 [batch, 28, 28], 0 = black, 255 = white.
Classifier graph: image uint8 [batch, 28, 28] -> probs float32 [batch, 10],
                  features float32 [batch, 128].
The [-1, 1] -> uint8 conversion lives in the graph, so the runtime only saves bytes; it
is ganlite.pixels.to_uint8 written in TensorFlow (a test checks that they agree).
"""
from __future__ import annotations

import numpy as np

from ganlite.latents import draw

from .card import _first_line, cpu_session
from .errors import ExportError, ParityError
from .parity import MAX_ABS_FLOAT, MAX_GRAY_LEVELS, generator_parity

__all__ = ["MAX_ABS_FLOAT", "MAX_GRAY_LEVELS", "ParityError", "export_classifier",
           "export_generator"]

OPSET = 17


def _to_uint8_tf(x):
    """ganlite.pixels.to_uint8 of x[..., 0], in TensorFlow (inside the exported graph)."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round((x[..., 0] + 1.0) * 127.5), 0.0, 255.0),
                   tf.uint8)


def _generator_function(model, latent_dim: int, conditional: bool):
    import tensorflow as tf

    post = _to_uint8_tf
    z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    if conditional:
        label_spec = tf.TensorSpec([None], tf.int64, name="label")

        @tf.function(input_signature=[z_spec, label_spec])
        def serve(z, label):
            return {"image": post(model([z, tf.cast(label, tf.int32)], training=False))}
        return serve, [z_spec, label_spec]

    @tf.function(input_signature=[z_spec])
    def serve(z):
        return {"image": post(model(z, training=False))}
    return serve, [z_spec]


def _convert(function, signature):
    import tf2onnx

    try:
        model_proto, _ = tf2onnx.convert.from_function(function, input_signature=signature,
                                                       opset=OPSET)
    except Exception as e:  # noqa: BLE001  (tf2onnx and TensorFlow raise many types)
        raise ExportError(f"tf2onnx cannot convert the model ({_first_line(e)})") from None
    return model_proto


def _run_onnx(model_proto, feeds: dict) -> dict:
    session = cpu_session(model_proto)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def export_generator(model, latent_dim: int, conditional: bool, num_classes: int,
                     parity_samples: int = 1000, seed: int = 20261128,
                     optimize_graph: bool = True):
    """(ONNX ModelProto with uint8 output, parity figures); raises ParityError.

    The tf2onnx conversion is checked against Keras; with `optimize_graph` the graph is then
    rewritten for onnxruntime's CPU kernels (export/optimize.py) and the rewritten graph is
    checked against Keras again, with the same bounds: the figures returned (and recorded
    in the card) are those of the graph that ships.
    """
    from .optimize import optimize

    z, labels = draw(seed, 0, parity_samples, latent_dim, num_classes if conditional else 0)
    feeds = {"z": z}
    keras_inputs = z
    if conditional:
        feeds["label"] = labels
        keras_inputs = [z, labels.astype(np.int32)]
    keras_float = np.asarray(model.predict(keras_inputs, batch_size=500, verbose=0))[..., 0]
    if not np.isfinite(keras_float).all():
        raise ExportError("the Keras generator returns NaN or infinite values: nothing to "
                          "export (did training diverge?)")

    uint8_fn, signature = _generator_function(model, latent_dim, conditional)
    proto = _convert(uint8_fn, signature)
    parity = generator_parity(proto, feeds, keras_float)
    if optimize_graph:
        converted = parity
        proto = optimize(proto)
        parity = generator_parity(proto, feeds, keras_float)
        parity["graph"] = "optimized (export/optimize.py)"
        parity["converted_graph"] = {k: converted[k] for k in
                                     ("max_abs_float", "max_gray_levels", "pixels_differing")}
    return proto, parity


def export_classifier(model, parity_samples: int = 1000, seed: int = 20261128):
    """(ONNX ModelProto, parity figures) of the evaluation classifier."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, 28, 28], tf.uint8, name="image")

    @tf.function(input_signature=[spec])
    def serve(image):
        probs, features = model(tf.cast(image, tf.float32)[..., None] / 255.0,
                                training=False)
        return {"probs": probs, "features": features}

    proto = _convert(serve, [spec])
    # Digit-like inputs: blurred sparse strokes, not only uniform noise.
    rng = np.random.default_rng(seed)
    images = (rng.random((parity_samples, 28, 28)) ** 6 * 255).astype(np.uint8)
    keras_probs, keras_feats = model.predict(images[..., None].astype(np.float32) / 255.0,
                                             batch_size=500, verbose=0)
    out = _run_onnx(proto, {"image": images})
    probs_diff = float(np.abs(out["probs"] - keras_probs).max())
    feats_diff = float(np.abs(out["features"] - keras_feats).max())
    scale = float(np.abs(keras_feats).max())
    parity = {"samples": parity_samples, "max_abs_probs": probs_diff,
              "max_abs_features": feats_diff, "max_feature": scale,
              "tolerance": f"probs <= {MAX_ABS_FLOAT}, features <= {MAX_ABS_FLOAT} x max"}
    if not (probs_diff <= MAX_ABS_FLOAT and feats_diff <= MAX_ABS_FLOAT * max(scale, 1.0)):
        raise ParityError(f"parity check failed, nothing written: Keras and onnxruntime "
                          f"disagree: probs {probs_diff:.3g}, features {feats_diff:.3g} "
                          f"(max feature {scale:.3g})")
    return proto, parity
