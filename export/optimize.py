"""Rewrite an exported generator graph for onnxruntime's CPU kernels, exact to float rounding.

    from export.optimize import optimize
    fast = optimize(onnx.load("artifacts/mnist-cdcgan.onnx"))     # a new ModelProto

tf2onnx exports the DCGAN generators of train/models.py as
    MatMul -> BatchNorm (Mul, Add) -> Relu -> Reshape NHWC -> Transpose NCHW
    -> 2 x [ConvTranspose 4x4 stride 2 -> Mul -> Add -> Relu]
    -> Conv 3x3 -> Tanh -> Slice/Squeeze -> (x + 1) * 127.5 -> Round -> Min -> Max -> Cast.
onnxruntime runs ConvTranspose as GEMM + col2im in NCHW (no fused activation, reorders into
and out of its NCHWc layout around it) and every Mul/Add/Relu as one more pass over a large
tensor. The rewrites below run in this order; each matches one pattern and leaves the graph
alone where it does not match (an MLP generator, say):

  batchnorm     BatchNormalization (inference form) -> Mul, Add
  affine        Mul/Add by per-channel constants -> folded into the weights and bias of the
                MatMul/Gemm/Conv/ConvTranspose before them (a Mul by per-feature constants
                before a MatMul/Gemm, the MLP's batch norm, into its weights)
  transpose     Dense -> Relu -> Reshape NHWC -> Transpose: Dense columns permuted, Reshape
                straight to NCHW
  convtranspose ConvTranspose 4x4/2 pads 1 -> four 2x2 Convs, one per output phase
                (Concat + DepthToSpace stand for the interleave; later rewrites remove them)
  hoist         Relu after Concat/DepthToSpace -> into each Conv (fused by onnxruntime)
  uint8         Tanh .. Cast -> Sigmoid (fused into the Conv) + one QuantizeLinear
  final         the image Conv after a ConvTranspose -> run on the 4 phases (four 2x2 Convs
                summed) so the 28x28x32 tensor is never interleaved; its 4-channel output is
                interleaved once, on uint8
  interleave    the remaining phase interleave (14x14x64) -> in NHWC, by two Concats
  slices        Slices that copy a whole tensor -> removed

The float image before rounding agrees with the original to ~1e-6; the uint8 output to at
most 1 gray level (rounding ties), see tests/test_optimize.py; check() measures it at export.
Only standard ONNX ops (opset 13+) are emitted. Figures: bench/profile_graph.py and
bench/results/optimize-notes.md.
"""
from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

STEPS = ("batchnorm", "affine", "transpose", "convtranspose", "hoist", "uint8", "final",
         "interleave", "slices")
# "phases": four exact 2x2 Convs (default). "single": one 2x2 Conv over the padded input
# giving all phases as 4*C channels on an (H+1)x(W+1) grid, then DepthToSpace and a Slice
# (1.31x / 1.15x the multiply-adds; measured slower). "keep": no ConvTranspose rewrite.
CONVTRANSPOSE = ("phases", "single", "keep")
# How the layer-to-layer phase interleave is done: "nhwc" (default) or "depth_to_space".
INTERLEAVE = ("nhwc", "depth_to_space")


def optimize(model: onnx.ModelProto, steps=STEPS, convtranspose: str = "phases",
             interleave: str = "nhwc") -> onnx.ModelProto:
    """The rewritten model (the argument is not modified). `steps` (a subset of STEPS) and
    the two layout choices are there to measure what each rewrite buys."""
    if convtranspose not in CONVTRANSPOSE or interleave not in INTERLEAVE:
        raise ValueError(f"convtranspose in {CONVTRANSPOSE}, interleave in {INTERLEAVE}")
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown steps {sorted(unknown)}; choose from {STEPS}")
    rewrites = {
        "batchnorm": _batchnorm_to_affine,
        "affine": lambda g: (_fold_affine_into_linear(g), _fold_scale_into_next_linear(g)),
        "transpose": _fold_nhwc_transpose,
        "convtranspose": lambda g: _convtranspose_to_phases(g, convtranspose),
        "hoist": _hoist_activations,
        "uint8": _uint8_output,
        "final": lambda g: (_conv_on_phases(g), _sink_depth_to_space(g)),
        "interleave": lambda g: interleave == "nhwc" and _interleave_nhwc(g),
        "slices": _drop_identity_slices,
    }
    model = copy.deepcopy(model)
    g = _Graph(model)
    for name in STEPS:
        if name in steps:
            rewrites[name](g)
            g.prune()
    g.finish()
    return model


# ---------------------------------------------------------------------------------------
# A small mutable view of the graph: constants as numpy arrays, static shapes, edits.

class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model, self.graph = model, model.graph
        self._counter = 0
        self.consts = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        nodes, names = [], set()
        for node in self.graph.node:
            if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                continue
            if not node.name or node.name in names:   # replace() matches nodes by name
                node.name = self.fresh(node.op_type)
            names.add(node.name)
            nodes.append(node)
        self._set_nodes(nodes)
        del self.graph.initializer[:]
        self.infer_shapes()

    def infer_shapes(self) -> None:
        """Static shapes of all values (None for unknown dims), by onnx shape inference."""
        probe = onnx.ModelProto()
        probe.CopyFrom(self.model)
        probe.graph.initializer.extend(numpy_helper.from_array(v, k)
                                       for k, v in self.consts.items())
        del probe.graph.value_info[:]
        inferred = onnx.shape_inference.infer_shapes(probe).graph
        self.shapes = {k: list(v.shape) for k, v in self.consts.items()}
        for vi in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                        for d in vi.type.tensor_type.shape.dim]

    def shape(self, name):
        return self.shapes.get(name)

    def const(self, name):
        return self.consts.get(name)

    def producer(self, name):
        return next((n for n in self.graph.node if name in n.output), None)

    def is_output(self, name) -> bool:
        return any(o.name == name for o in self.graph.output)

    def only_consumer(self, name):
        """The one node that reads `name`, if `name` is not also a graph output."""
        users = [n for n in self.graph.node if name in n.input]
        return users[0] if len(users) == 1 and not self.is_output(name) else None

    def fresh(self, base: str) -> str:
        self._counter += 1
        return f"opt/{base}_{self._counter}"

    def add_const(self, base: str, value) -> str:
        name = self.fresh(base)
        self.consts[name] = np.asarray(value)
        return name

    def make(self, op: str, inputs, outputs=None, **attrs):
        name = self.fresh(op)
        return helper.make_node(op, list(inputs), list(outputs or [name + ":0"]), name=name,
                                **attrs)

    def _set_nodes(self, nodes) -> None:
        nodes = [copy.deepcopy(n) for n in nodes]
        del self.graph.node[:]
        self.graph.node.extend(nodes)

    def replace(self, old_nodes, new_nodes) -> None:
        """`new_nodes` where the first of `old_nodes` was; `old_nodes` removed. Shapes are
        inferred again."""
        gone = {n.name for n in old_nodes}
        nodes = list(self.graph.node)
        at = min(i for i, n in enumerate(nodes) if n.name in gone)
        self._set_nodes([n for n in nodes[:at] if n.name not in gone] + list(new_nodes)
                        + [n for n in nodes[at:] if n.name not in gone])
        self.infer_shapes()

    def rename_uses(self, old: str, new: str) -> None:
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new

    def prune(self) -> None:
        """Drop nodes and constants that nothing reads."""
        outputs = {o.name for o in self.graph.output}
        while True:
            used = outputs | {i for n in self.graph.node for i in n.input}
            keep = [n for n in self.graph.node if any(o in used for o in n.output)]
            if len(keep) == len(self.graph.node):
                break
            self._set_nodes(keep)
        self.consts = {k: v for k, v in self.consts.items() if k in used}
        self.infer_shapes()

    def finish(self) -> None:
        del self.graph.value_info[:]
        self.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v), k)
                                      for k, v in self.consts.items())
        onnx.checker.check_model(self.model)


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _ints(node, name, default):
    return [int(v) for v in _attr(node, name, default)]


# ---------------------------------------------------------------------------------------
# Folding batch norm.

def _batchnorm_to_affine(g: _Graph) -> None:
    """An inference BatchNormalization is x * s + t per channel; written as Mul/Add by
    constants (the form tf2onnx exports), the next rewrite folds it into the layer before."""
    for node in list(g.graph.node):
        if node.op_type != "BatchNormalization" or len(node.output) != 1:
            continue
        scale, bias, mean, var = (g.const(n) for n in node.input[1:5])
        rank = len(g.shape(node.input[0]) or [])
        if any(v is None for v in (scale, bias, mean, var)) or rank < 2:
            continue
        s = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + _attr(node, "epsilon",
                                                                               1e-5))
        t = bias - mean * s
        shape = [-1] + [1] * (rank - 2)
        mul = g.make("Mul", [node.input[0], g.add_const("bn_scale", _f32(s).reshape(shape))])
        add = g.make("Add", [mul.output[0], g.add_const("bn_shift", _f32(t).reshape(shape))],
                     [node.output[0]])
        g.replace([node], [mul, add])


def _channel_vector(g: _Graph, node, data: str, channels: int, axis: int):
    """The float64 per-channel vector of a Mul/Add of `data` by a constant that is a scalar
    or varies along `axis` only; else None."""
    other = [i for i in node.input if i != data]
    rank = len(g.shape(data) or [])
    c = g.const(other[0]) if len(other) == 1 else None
    if c is None or c.dtype != np.float32 or c.ndim > rank or rank == 0:
        return None
    if c.size == 1:
        return np.full(channels, float(c.reshape(())))
    full = [1] * (rank - c.ndim) + list(c.shape)
    axis %= rank
    if full[axis] != channels or any(d != 1 for i, d in enumerate(full) if i != axis):
        return None
    return c.reshape(-1).astype(np.float64)


def _linear_params(g: _Graph, node):
    """(weight [K, N] or conv filter, bias or None, channel axis of the output, which weight
    axis holds the output channels) of a linear node with constant parameters, else None."""
    w = g.const(node.input[1]) if len(node.input) > 1 else None
    has_bias = len(node.input) > 2 and node.input[2]
    b = g.const(node.input[2]) if has_bias else None
    if w is None or w.dtype != np.float32 or (has_bias and b is None):
        return None
    if node.op_type == "MatMul" and w.ndim == 2:
        return w, None, -1, 1
    if node.op_type == "Gemm" and w.ndim == 2 and not _attr(node, "transA", 0) \
            and _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0 \
            and (b is None or b.size in (1, w.shape[1 - _attr(node, "transB", 0)])):
        return (w.T if _attr(node, "transB", 0) else w), b, -1, 1
    if node.op_type in ("Conv", "ConvTranspose") and _attr(node, "group", 1) == 1:
        return w, b, 1, 0 if node.op_type == "Conv" else 1
    return None


def _fold_affine_into_linear(g: _Graph) -> None:
    """A Mul/Add by a per-output-channel constant right after a MatMul/Gemm/Conv/
    ConvTranspose (inference batch norm) is a separate pass over a large tensor that
    onnxruntime does not fuse; in the layer's weights and bias it costs nothing, and the
    activation after it can then fuse with the layer (FusedGemm, NCHWc Conv)."""
    changed = True
    while changed:
        changed = False
        for node in list(g.graph.node):
            params = _linear_params(g, node)
            user = g.only_consumer(node.output[0]) if params else None
            if user is None or user.op_type not in ("Mul", "Add"):
                continue
            w, b, axis, w_axis = params
            channels = w.shape[w_axis]
            v = _channel_vector(g, user, node.output[0], channels, axis)
            if v is None:
                continue
            w64 = w.astype(np.float64)
            b64 = np.zeros(channels) if b is None else np.broadcast_to(
                b.astype(np.float64).reshape(-1), (channels,)).copy()
            if user.op_type == "Mul":
                shape = [1] * w64.ndim
                shape[w_axis] = -1
                w64, b64 = w64 * v.reshape(shape), b64 * v
            else:
                b64 = b64 + v
            g.replace([node, user], _rebuild_linear(g, node, _f32(w64), _f32(b64),
                                                    user.output[0]))
            changed = True
            break


def _fold_scale_into_next_linear(g: _Graph) -> None:
    """Keras puts BatchNormalization after the activation in the MLP generator, and tf2onnx
    leaves its scale as a Mul before the next Dense: (x * s) @ W = x @ (s[:, None] * W),
    one pass fewer over each hidden layer."""
    changed = True
    while changed:
        changed = False
        for mul in list(g.graph.node):
            user = g.only_consumer(mul.output[0]) if mul.op_type == "Mul" else None
            params = _linear_params(g, user) if user is not None else None
            if params is None or user.op_type not in ("MatMul", "Gemm") \
                    or user.input[0] != mul.output[0]:
                continue
            w, b = params[0], params[1]
            data = [i for i in mul.input if g.const(i) is None]
            v = _channel_vector(g, mul, data[0], w.shape[0], -1) if len(data) == 1 else None
            if v is None:
                continue
            new = _rebuild_linear(g, user, _f32(v[:, None] * w.astype(np.float64)),
                                  np.zeros(w.shape[1], np.float32) if b is None else b,
                                  user.output[0])
            new[0].input[0] = data[0]
            g.replace([mul, user], new)
            changed = True
            break


def _rebuild_linear(g: _Graph, node, w, b, output):
    """`node` again with weight `w` ([K, N] for MatMul/Gemm) and bias `b`, writing `output`."""
    if node.op_type in ("MatMul", "Gemm"):
        x = node.input[0]
        if len(g.shape(x) or []) == 2:
            return [g.make("Gemm", [x, g.add_const("w", w), g.add_const("b", b)], [output])]
        mm = g.make("MatMul", [x, g.add_const("w", w)])
        return [mm, g.make("Add", [mm.output[0], g.add_const("b", b)], [output])]
    new = g.make(node.op_type, [node.input[0], g.add_const("w", w), g.add_const("b", b)],
                 [output])
    new.attribute.extend(node.attribute)
    return [new]


def _fold_nhwc_transpose(g: _Graph) -> None:
    """Keras reshapes the Dense output to NHWC and tf2onnx transposes it to NCHW for the
    convolutions: a copy of the tensor. With the Dense columns permuted to (c, h, w) order
    a Reshape (no copy) gives NCHW directly."""
    for node in list(g.graph.node):
        if node.op_type != "Transpose" or _ints(node, "perm", []) != [0, 3, 1, 2]:
            continue
        reshape = g.producer(node.input[0])
        if reshape is None or reshape.op_type != "Reshape" \
                or g.only_consumer(reshape.output[0]) is None:
            continue
        target = g.const(reshape.input[1])
        if target is None or target.size != 4 or any(d <= 0 for d in target[1:]):
            continue
        chain, dense = [], g.producer(reshape.input[0])
        while dense is not None and dense.op_type == "Relu" \
                and g.only_consumer(dense.output[0]) is not None:
            chain.append(dense)
            dense = g.producer(dense.input[0])
        h, w_, c = (int(d) for d in target[1:])
        if dense is None or dense.op_type != "Gemm" or _attr(dense, "transB", 0) \
                or g.only_consumer(dense.output[0]) is None:
            continue
        w = g.const(dense.input[1])
        b = g.const(dense.input[2]) if len(dense.input) > 2 and dense.input[2] else None
        if w is None or w.shape[1] != h * w_ * c or (b is not None and b.shape != (h * w_ * c,)):
            continue
        order = np.arange(h * w_ * c).reshape(h, w_, c).transpose(2, 0, 1).reshape(-1)
        dense.input[1] = g.add_const("w_nchw", w[:, order])
        if b is not None:
            dense.input[2] = g.add_const("b_nchw", b[order])
        reshape.input[1] = g.add_const("shape_nchw", np.array([-1, c, h, w_], np.int64))
        g.rename_uses(node.output[0], reshape.output[0])
        g.replace([node], [])


# ---------------------------------------------------------------------------------------
# ConvTranspose as phase convolutions.

# A 4x4 stride-2 pads-1 ConvTranspose writes output row 2m + a from input rows (m - 1, m)
# with kernel rows (3, 1) when a = 0, and from rows (m, m + 1) with kernel rows (2, 0) when
# a = 1; columns likewise.
_TAPS = {0: (3, 1), 1: (2, 0)}


def _is_4x4_stride2(g: _Graph, node) -> bool:
    w = g.const(node.input[1]) if len(node.input) > 1 else None
    return (node.op_type == "ConvTranspose" and w is not None and w.ndim == 4
            and w.shape[2:] == (4, 4) and _ints(node, "strides", [1, 1]) == [2, 2]
            and _ints(node, "pads", [0] * 4) == [1, 1, 1, 1]
            and _ints(node, "dilations", [1, 1]) == [1, 1] and _attr(node, "group", 1) == 1
            and _attr(node, "auto_pad", "NOTSET") == "NOTSET"
            and not _attr(node, "output_padding") and not _attr(node, "output_shape"))


def _convtranspose_to_phases(g: _Graph, mode: str) -> None:
    """onnxruntime runs ConvTranspose as GEMM + col2im without fused activations, and
    reorders into and out of its NCHWc layout around it. Each output phase (row parity a,
    column parity b) of a 4x4 stride-2 ConvTranspose is a 2x2 Conv of the input with
    padding on one side only: four Convs, exactly the ConvTranspose's multiply-adds,
    onnxruntime's NCHWc Conv kernels with the Relu fused. Their outputs are interleaved by
    Concat + DepthToSpace (DCR), which the rewrites after this one replace."""
    if mode == "keep":
        return
    for node in list(g.graph.node):
        if not _is_4x4_stride2(g, node):
            continue
        w = g.const(node.input[1])                               # [C_in, C_out, 4, 4]
        b = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        c_out = w.shape[1]
        bias = np.zeros(c_out, np.float32) if b is None else b

        def phase_filter(rows, cols, w=w):
            return np.ascontiguousarray(w[:, :, rows][:, :, :, cols].transpose(1, 0, 2, 3))

        x, y = node.input[0], node.output[0]
        if mode == "phases":
            convs = [g.make("Conv", [x, g.add_const("w_phase", phase_filter(_TAPS[a], _TAPS[c])),
                                     g.add_const("b_phase", bias)],
                            kernel_shape=[2, 2], strides=[1, 1], pads=[1 - a, 1 - c, a, c])
                     for a in range(2) for c in range(2)]
            cat = g.make("Concat", [c.output[0] for c in convs], axis=1)
            g.replace([node], convs + [cat, g.make("DepthToSpace", [cat.output[0]], [y],
                                                   blocksize=2, mode="DCR")])
        else:
            # One Conv over the input padded by 1: window p (rows p-1, p) gives phase 0 of
            # output row 2p and phase 1 of row 2p - 1; channel block s holds phase 1 - s, so
            # DepthToSpace gives the output shifted by one, one row/column too many each side.
            filters = [phase_filter(_TAPS[1 - s], _TAPS[1 - t]) for s in range(2)
                       for t in range(2)]
            conv = g.make("Conv", [x, g.add_const("w_phase", np.concatenate(filters)),
                                   g.add_const("b_phase", np.tile(bias, 4))],
                          kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1])
            d2s = g.make("DepthToSpace", [conv.output[0]], blocksize=2, mode="DCR")
            crop = g.make("Slice", [d2s.output[0], g.add_const("starts", np.array([1, 1])),
                                    g.add_const("ends", np.array([-1, -1])),
                                    g.add_const("axes", np.array([2, 3]))], [y])
            g.replace([node], [conv, d2s, crop])


_DATA_MOVES = ("DepthToSpace", "Slice", "Concat")


def _hoist_activations(g: _Graph) -> None:
    """Relu commutes with DepthToSpace, Slice and Concat; moved before them (into each
    Concat branch) it sits right after its Conv, and onnxruntime fuses it there instead of
    making one more pass."""
    changed = True
    while changed:
        changed = False
        for node in list(g.graph.node):
            mover = g.producer(node.input[0]) if node.op_type == "Relu" else None
            if mover is None or mover.op_type not in _DATA_MOVES \
                    or g.only_consumer(mover.output[0]) is None:
                continue
            data = list(mover.input) if mover.op_type == "Concat" else [mover.input[0]]
            if any(g.only_consumer(d) is None or g.const(d) is not None for d in data):
                continue
            relus = [g.make("Relu", [d]) for d in data]
            for i, r in enumerate(relus):
                mover.input[i] = r.output[0]
            mover.output[0] = node.output[0]
            g.replace([mover, node], relus + [mover])
            changed = True
            break


def _uint8_output(g: _Graph) -> None:
    """The exported post-processing is six passes (Tanh, Add, Mul, Round, Min, Max) and a
    Cast. (tanh(x) + 1) * 127.5 = 255 * sigmoid(2x) lies in [0, 255]: with the 2 folded into
    the last layer it is a Sigmoid (fused into the Conv by onnxruntime) and one
    QuantizeLinear(scale 1/255, zero point 0), which rounds half to even and saturates to
    uint8 like Round/Min/Max/Cast. Slice/Squeeze of the channel move after it, on uint8."""
    for cast in list(g.graph.node):
        if cast.op_type != "Cast" or _attr(cast, "to") != onnx.TensorProto.UINT8:
            continue
        chain, cur = [], g.producer(cast.input[0])
        while cur is not None and cur.op_type != "Tanh" and len(chain) < 12:
            chain.insert(0, cur)
            cur = g.producer(cur.input[0])
        tanh, layer = cur, g.producer(cur.input[0]) if cur is not None else None
        if layer is None or any(g.only_consumer(n.output[0]) is None
                                 for n in [layer, tanh] + chain):
            continue
        moves = [n for n in chain if n.op_type in ("Slice", "Squeeze", "Reshape", "Unsqueeze")]
        math = [n for n in chain if n not in moves]
        if [n.op_type for n in math][:3] != ["Add", "Mul", "Round"] \
                or sorted(n.op_type for n in math[3:]) != ["Max", "Min"]:
            continue
        consts = {n.op_type: g.const(n.input[1]) for n in math if n.op_type != "Round"}
        if any(c is None or c.size != 1 for c in consts.values()) or \
                {k: float(v.reshape(())) for k, v in consts.items()} != \
                {"Add": 1.0, "Mul": 127.5, "Min": 255.0, "Max": 0.0}:
            continue
        params = _linear_params(g, layer)
        if params is None or layer.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w, b = params[0], params[1]
        new_layer = _rebuild_linear(g, layer, w * np.float32(2),
                                    (np.zeros(w.shape[params[3]], np.float32) if b is None
                                     else b.reshape(-1)) * np.float32(2), layer.output[0])
        sig = g.make("Sigmoid", [layer.output[0]])
        q = g.make("QuantizeLinear", [sig.output[0], g.add_const("scale", np.float32(1 / 255)),
                                      g.add_const("zero_point", np.uint8(0))])
        moved, prev = [], q.output[0]
        for i, n in enumerate(moves):
            out = cast.output[0] if i == len(moves) - 1 else g.fresh(n.op_type) + ":0"
            m = g.make(n.op_type, [prev] + list(n.input[1:]), [out])
            m.attribute.extend(n.attribute)
            moved.append(m)
            prev = out
        if not moves:
            q.output[0] = cast.output[0]
        g.replace([layer, tanh] + chain + [cast], new_layer + [sig, q] + moved)


# ---------------------------------------------------------------------------------------
# The image layer on the phases, and the interleave.

# A 3x3 Conv (row offsets dr = -1, 0, 1) of an interleaved input, seen from the input's row
# phase a2: output row 2m + a reads phase-a2 rows m - a2 + k (k = 0, 1) with the 3x3 kernel
# row dr = _PHASE_DR[a2][a][k] + 1 (None: no tap). Columns likewise.
_PHASE_DR = {1: ((-1, 1), (None, 0)), 0: ((0, None), (-1, 1))}


def _phase_concat(g: _Graph, d2s):
    """The Concat of 4 phases [P00, P01, P10, P11] that `d2s` (DepthToSpace DCR 2)
    interleaves, if that is what feeds it and nothing else reads the Concat."""
    if d2s is None or d2s.op_type != "DepthToSpace" or _attr(d2s, "blocksize") != 2 \
            or _attr(d2s, "mode", "DCR") != "DCR":
        return None
    cat = g.producer(d2s.input[0])
    if cat is None or cat.op_type != "Concat" or len(cat.input) != 4 \
            or _attr(cat, "axis") not in (1, -3) or g.only_consumer(cat.output[0]) is None:
        return None
    return cat


def _conv_on_phases(g: _Graph) -> None:
    """The image Conv (3x3, 32 -> 1 channels) reads the interleaved 28x28x32 tensor, the
    largest of the model, whose interleave costs two passes (and onnxruntime pads its one
    output channel to an 8-channel block). On the 4 phases instead, each output phase is a
    sum of four 2x2 Convs (one per input phase, zero padding still exact); only the 4-channel
    result needs interleaving, which is moved after the Sigmoid and QuantizeLinear."""
    for node in list(g.graph.node):
        if node.op_type != "Conv":
            continue
        d2s = g.producer(node.input[0])
        cat = _phase_concat(g, d2s)
        w = g.const(node.input[1])
        has_bias = len(node.input) > 2 and node.input[2]
        b = g.const(node.input[2]) if has_bias else None
        if cat is None or g.only_consumer(d2s.output[0]) is None or w is None \
                or w.shape[2:] != (3, 3) or _attr(node, "group", 1) != 1 \
                or _ints(node, "pads", [0] * 4) != [1, 1, 1, 1] \
                or _ints(node, "strides", [1, 1]) != [1, 1] \
                or _ints(node, "dilations", [1, 1]) != [1, 1] or (has_bias and b is None):
            continue
        c_out, c_in = w.shape[:2]
        if 4 * c_out > c_in:        # worth it only when the output is the smaller side
            continue
        bias = np.zeros(c_out, np.float32) if b is None else b
        new, total = [], None
        for a2 in range(2):
            for b2 in range(2):
                f = np.zeros((2, 2, c_out, c_in, 2, 2), np.float32)
                for a in range(2):
                    for c in range(2):
                        for k in range(2):
                            for m in range(2):
                                dr, dc = _PHASE_DR[a2][a][k], _PHASE_DR[b2][c][m]
                                if dr is not None and dc is not None:
                                    f[a, c, :, :, k, m] = w[:, :, dr + 1, dc + 1]
                inputs = [cat.input[2 * a2 + b2], g.add_const("w_image_phase",
                                                               f.reshape(4 * c_out, c_in, 2, 2))]
                if total is None:
                    inputs.append(g.add_const("b_image_phase", np.tile(bias, 4)))
                conv = g.make("Conv", inputs, kernel_shape=[2, 2], strides=[1, 1],
                              pads=[a2, b2, 1 - a2, 1 - b2])
                new.append(conv)
                if total is not None:
                    new.append(g.make("Add", [total, conv.output[0]]))
                total = new[-1].output[0]
        out = g.make("DepthToSpace", [total], list(node.output), blocksize=2, mode="DCR")
        g.replace([cat, d2s, node], new + [out])


def _sink_depth_to_space(g: _Graph) -> None:
    """Elementwise ops commute with DepthToSpace: moved after them, the interleave runs
    last, on the uint8 image (a quarter of the bytes)."""
    changed = True
    while changed:
        changed = False
        for node in list(g.graph.node):
            user = g.only_consumer(node.output[0]) if node.op_type == "DepthToSpace" else None
            if user is None or user.op_type not in ("Relu", "Sigmoid", "Tanh", "QuantizeLinear") \
                    or user.input[0] != node.output[0] or any(
                    g.const(i) is None or g.const(i).size != 1 for i in user.input[1:]):
                continue
            moved = g.make(user.op_type, [node.input[0]] + list(user.input[1:]))
            moved.attribute.extend(user.attribute)
            d2s = g.make("DepthToSpace", moved.output, list(user.output))
            d2s.attribute.extend(node.attribute)
            g.replace([node, user], [moved, d2s])
            changed = True
            break


def _interleave_nhwc(g: _Graph) -> None:
    """DepthToSpace in NCHW moves single floats (onnxruntime: one slow pass on one thread,
    plus a reorder out of NCHWc before it and one back after it). In NHWC the interleave
    moves whole pixels of C floats: the Transposes to NHWC fuse into onnxruntime's NCHWc
    ReorderOutput, a channel Concat puts the column phases side by side, and a second
    Concat of [N, H, 1, 2W*C] rows puts the row phases one under the other."""
    for node in list(g.graph.node):
        cat = _phase_concat(g, node)
        shape = g.shape(cat.input[0]) if cat is not None else None
        if shape is None or len(shape) != 4 or None in shape[1:]:
            continue
        _, c, h, w = shape
        nhwc = [g.make("Transpose", [p], perm=[0, 2, 3, 1]) for p in cat.input]
        rows = []
        for a in range(2):
            pair = g.make("Concat", [nhwc[2 * a].output[0], nhwc[2 * a + 1].output[0]],
                          axis=3)                                           # [N, H, W, 2C]
            rows += [pair, g.make("Reshape", [pair.output[0], g.add_const(
                "shape", np.array([-1, h, 1, 2 * w * c]))])]
        both = g.make("Concat", [rows[1].output[0], rows[3].output[0]], axis=2)
        image = g.make("Reshape", [both.output[0], g.add_const(
            "shape", np.array([-1, 2 * h, 2 * w, c]))])
        nchw = g.make("Transpose", image.output, list(node.output), perm=[0, 3, 1, 2])
        g.replace([cat, node], nhwc + rows + [both, image, nchw])


def _drop_identity_slices(g: _Graph) -> None:
    """A Slice whose output has its input's static shape copies the tensor for nothing
    (tf2onnx's x[..., 0] of a 1-channel image)."""
    for node in list(g.graph.node):
        si, so = g.shape(node.input[0]), g.shape(node.output[0])
        if node.op_type != "Slice" or si is None or si != so or None in si[1:] \
                or g.is_output(node.output[0]):
            continue
        g.rename_uses(node.output[0], node.input[0])
        g.replace([node], [])


def check(original: onnx.ModelProto, optimized: onnx.ModelProto, samples: int = 1000,
          seed: int = 20261128, num_classes: int = 10) -> dict:
    """Parity of the optimized graph against the original one, on the same random latents
    (labels cycling through all `num_classes` classes), with export/parity.py's bounds
    (1e-4 on the float image before rounding, 1 gray level on uint8).

    Returns:
        {"samples", "max_abs_float", "max_gray_levels", "pixels_differing", "tolerance"}.

    Raises:
        export.errors.ParityError: beyond the bounds.
    """
    from .parity import float_image, generator_parity

    inputs = {i.name: i for i in original.graph.input}
    z_dim = inputs["z"].type.tensor_type.shape.dim[1].dim_value
    rng = np.random.default_rng(seed)
    feeds = {"z": rng.standard_normal((samples, z_dim), dtype=np.float32)}
    if "label" in inputs:
        feeds["label"] = np.arange(samples, dtype=np.int64) % num_classes
    return generator_parity(optimized, feeds, float_image(original, feeds),
                            against="the original graph")
