"""Training on several devices with tf.distribute (GanConfig.strategy).

  default       one device: the code path of every run made before strategies existed.
                Nothing here touches it (same command, same checkpoint and generator bytes).
  mirrored      tf.distribute.MirroredStrategy, the devices of one machine: GanConfig.devices
                GPUs (0: all of them), or, on a machine without a GPU, that many logical
                devices split from its CPU (a test bed for the code path, no speed-up).
  multi-worker  tf.distribute.MultiWorkerMirroredStrategy: one process per machine, each
                told the cluster and its own place in it by the TF_CONFIG environment
                variable; only the chief writes the run folder.

How a step is split, for both strategies: the global batch (batch_size) is cut into equal
slices, one per replica. Replica r trains on rows [r*b, (r+1)*b) of the very batch a
default run uses at that step, on the same rows of the latents a default run draws for
the whole batch, and (DiffAugment) on the same rows of the whole batch's augmentation, so
replicas see different images, latents and transforms. Each replica divides its loss (a
mean over its rows, R1 penalty included) by the number of replicas: apply_gradients sums
the replicas' gradients (Keras's TensorFlow optimizer all-reduces with SUM), which makes
the applied gradient the gradient of the mean over the global batch, as in a default run.
BatchNormalization is switched to synchronized statistics (the global batch's mean and
variance, again as in a default run, and the same moving averages on every replica).
Spectral norm's power-iteration vector is computed from the mirrored kernel, the same on
every replica.

So with an architecture without dropout a mirrored step is a default step up to float
rounding (tests/test_distribute.py: 1.2e-7 after 20 steps). Dropout is the exception:
Keras draws a mask from the layer's seed state, which every replica holds the same copy
of, so the replicas' masks repeat one another. A mirrored run is then its own run
(reproducible, but not the default run's numbers).

Everything the train step updates outside the optimizers (the generator's EMA, batch-norm
moving averages, dropout seeds, the loss trackers) is updated in replica context: mirrored
variables (aggregation NONE) take each replica's own update, which is the same value on
every replica as long as the replicas agree; `check_in_sync` verifies that at the end.
The loss trackers are Keras metrics (sync-on-read SUM variables) and Keras averages the
step's returned losses over replicas.

Two places where Keras 3.15's fit does not fit a GAN under a strategy are worked around
in `prepare` (each explained there): its symbolic build of the model before a distributed
fit, and its reduction of the step's outputs under MultiWorkerMirroredStrategy.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import GanConfig
from .errors import ConfigError, TrainError

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class Placement:
    """This process's place in a run: whether it writes the run folder (the chief) and
    which task of the cluster it is ("" for a single process)."""
    chief: bool = True
    task: str = ""


def placement(config: GanConfig) -> Placement:
    """Where this process stands, from TF_CONFIG for a multi-worker run (read before
    TensorFlow starts, so that a bad TF_CONFIG costs one line, not a hung cluster).

    The chief follows TensorFlow's rule: the task of type "chief" if the cluster has one,
    else worker 0.

    Raises:
        ConfigError: a multi-worker run without TF_CONFIG, or with one that does not
            describe a cluster of chief/worker tasks and this process's task in it.
    """
    if config.strategy != "multi-worker":
        return Placement()
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        raise ConfigError(f"strategy multi-worker needs the TF_CONFIG environment variable "
                          f"(the cluster and this process's task in it), e.g. "
                          f"TF_CONFIG='{TF_CONFIG_EXAMPLE}'")
    try:
        tf_config = json.loads(text)
    except ValueError:
        raise ConfigError(f"TF_CONFIG is not valid JSON; expected e.g. "
                          f"'{TF_CONFIG_EXAMPLE}'") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if (not isinstance(cluster, dict) or not cluster
            or not set(cluster) <= {"chief", "worker"}
            or not all(isinstance(v, list) and v and all(isinstance(a, str) for a in v)
                       for v in cluster.values())):
        raise ConfigError(f"TF_CONFIG's cluster must map 'worker' (and optionally "
                          f"'chief') to lists of host:port addresses, got "
                          f"{json.dumps(cluster)[:80]}")
    kind = task.get("type") if isinstance(task, dict) else None
    index = task.get("index") if isinstance(task, dict) else None
    if (kind not in cluster or isinstance(index, bool) or not isinstance(index, int)
            or not 0 <= index < len(cluster[kind])):
        raise ConfigError(f"TF_CONFIG's task must be {{\"type\": one of "
                          f"{', '.join(sorted(cluster))}, \"index\": a position in that "
                          f"list}}, got {json.dumps(task)[:80]}")
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    tasks = sum(len(v) for v in cluster.values())
    return Placement(chief=chief, task=f"{kind} {index} of {tasks} tasks")


def scratch_folder(where: Placement) -> Path:
    """The folder a non-chief worker writes its copy of the run into: TensorFlow's
    guidance for multi-worker saving is that every worker runs the same saving code (it
    may involve collective operations) and all but the chief write to a temporary place."""
    name = where.task.replace(" ", "-")
    folder = Path(tempfile.mkdtemp(prefix=f"ganlite-{name}-"))
    print(f"{where.task}: writing to scratch folder {folder} (removed at the end); the "
          f"chief writes the run folder", file=sys.stderr, flush=True)
    return folder


@contextlib.contextmanager
def cluster_failures(config: GanConfig) -> Iterator[None]:
    """For a multi-worker run: a task of the cluster that stops (TensorFlow's coordination
    service notices the missing heartbeats and aborts the collectives, about 10 s later)
    becomes one line naming the task and how to continue, instead of a traceback.

    Raises:
        TrainError: the cluster lost a task.
    """
    try:
        yield
    except Exception as e:
        tf = sys.modules.get("tensorflow")
        if (config.strategy != "multi-worker" or tf is None
                or not isinstance(e, tf.errors.UnavailableError)):
            raise
        # "... The following tasks are unhealthy (stopped sending heartbeats):\n/job:..."
        listed = re.search(r"unhealthy[^:]*:\s*((?:/job:\S+\s*)+)", str(e))
        lost = ", ".join(sorted(set(listed.group(1).split()))) if listed else "a task"
        raise TrainError(f"the cluster lost {lost} (TensorFlow aborted the collective "
                         f"operations); {config.out}/checkpoint.npz holds the last "
                         f"snapshot: start every worker again with --resume "
                         f"{config.out}") from None


def _cpu_devices(count: int) -> list[str]:
    """`count` logical CPU devices (TensorFlow must not be initialised yet)."""
    import tensorflow as tf

    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:
            # TensorFlow already started in this process: keep an identical split.
            if len(tf.config.list_logical_devices("CPU")) != count:
                raise TrainError(f"cannot split the CPU into {count} devices: TensorFlow "
                                 f"was already started in this process (run the "
                                 f"training in a fresh process)") from None
    return [f"/cpu:{i}" for i in range(count)]


def _mirrored_devices(count: int) -> list[str]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return _cpu_devices(count or 1)
    if count > len(gpus):
        raise ConfigError(f"devices (--devices) {count} is more than the {len(gpus)} "
                          f"GPU(s) of this machine")
    return [f"/gpu:{i}" for i in range(count or len(gpus))]


def make_strategy(config: GanConfig, where: Placement) -> Any:
    """The tf.distribute strategy of a run, or None for the default strategy. Call it
    before anything else starts TensorFlow (logical devices and the multi-worker
    cluster are set up once per process).

    Raises:
        ConfigError: the global batch cannot be split evenly over the replicas, or more
            devices are asked for than the machine has.
        TrainError: the CPU cannot be split any more (TensorFlow already started).
    """
    if config.strategy == "default":
        return None
    import tensorflow as tf

    if config.strategy == "multi-worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        devices = f"{where.task}, " + ", ".join(strategy.extended.worker_devices)
    else:
        names = _mirrored_devices(config.devices)
        strategy = tf.distribute.MirroredStrategy(names)
        devices = ", ".join(names)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch_size (--batch-size) {config.batch_size} must be a "
                          f"multiple of the {replicas} replicas of strategy "
                          f"{config.strategy}: each replica takes an equal share")
    if config.jit_compile:
        raise ConfigError(f"jit_compile (--jit-compile) is not supported with strategy "
                          f"{config.strategy} (it was not tested there)")
    print(f"strategy {config.strategy}: {replicas} replica(s) ({devices}), "
          f"{config.batch_size // replicas} images each of the {config.batch_size}-image "
          f"batch", file=sys.stderr, flush=True)
    return strategy


def scope(strategy: Any) -> contextlib.AbstractContextManager:
    """The strategy's scope (models, optimizers and metrics must be made in it), or a
    no-op for the default strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _layers(model: Any):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def prepare(gan: Any, strategy: Any) -> None:
    """Make a compiled GAN ready for a strategy's fit (no-op for the default strategy):
    batch-norm statistics over the global batch, and no symbolic build.

    Before a distributed fit, Keras (3.15, TensorFlow backend: trainer.py,
    _maybe_symbolic_build) takes the first batch, all-reduces it with MEAN as one
    nested structure and builds the model symbolically from it. Our GAN is built
    already (its networks are functional models, its optimizers built for the
    checkpoint), has no call() to build from, and MultiWorkerMirroredStrategy's reduce
    rejects a nested batch ("Attempt to convert a value (PerReplica...)"). So that step
    is skipped for this one model; the default strategy never takes it.
    """
    if strategy is None:
        return
    import keras

    for model in (gan.generator, gan.discriminator):
        for layer in _layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    gan.built = True
    gan._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if config_strategy(strategy) == "multi-worker":
        _vector_logs(gan)


def config_strategy(strategy: Any) -> str:
    """The GanConfig.strategy name of a tf.distribute strategy (None: default)."""
    import tensorflow as tf

    if strategy is None:
        return "default"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi-worker"
    return "mirrored"


def _vector_logs(gan: Any) -> None:
    """Give the step's logged values a length-1 axis.

    Under MultiWorkerMirroredStrategy Keras 3 (trainer.py, reduce_per_replica) reduces
    each value the step returns with strategy.reduce("MEAN", value, axis=0), which fails
    on scalars ("Invalid reduction dimension 0 for input with 0 dimensions";
    tensorflow/tensorflow#72388). Values of shape [1] reduce to the scalar mean over
    replicas, which is what the callbacks read.
    """
    import tensorflow as tf

    step = gan.train_step

    def train_step(data: Any) -> dict:
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    gan.train_step = train_step


def replica_rows(seed: Any, rows: Any, latent_dim: int, slot: Any) -> Any:
    """Replica `slot`'s rows of the latents a default run draws for the whole batch:
    stateless normals of shape [rows * replicas, latent_dim] from `seed`, rows
    [slot * rows, (slot + 1) * rows)."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    z = tf.random.stateless_normal((rows * replicas, latent_dim), seed=seed)
    return tf.gather(tf.reshape(z, (replicas, rows, latent_dim)), slot)


def in_global_batch(fn: Callable[[Any], Any], rows: Any, slot: Any) -> Any:
    """fn's output for this replica's rows of the global batch: fn (DiffAugment, whose
    random draws are per image, by position in the batch) is applied to a batch of the
    global size holding the replica's images at every slot, and the replica's slot is
    kept. So image i of replica r is transformed as image r*b + i of a default run. fn
    must treat images independently (its draws for other rows are thrown away)."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas == 1:
        return fn(rows)
    tiled = tf.tile(rows, [replicas] + [1] * (rows.shape.rank - 1))
    out = fn(tiled)
    shape = tf.concat([[replicas, tf.shape(rows)[0]], tf.shape(out)[1:]], axis=0)
    return tf.gather(tf.reshape(out, shape), slot)


def replica_share(loss: Any) -> Any:
    """A replica's share of a loss averaged over its own images: loss / replicas, so that
    the replicas' gradients, which apply_gradients sums, add up to the gradient of the
    global batch's mean. The loss itself with one replica (the default path unchanged)."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


def distribute_batches(make_batches: Callable[[], Any], strategy: Any,
                       batch_size: int) -> Any:
    """Per-replica batches of the global batches that `make_batches()` yields.

    `make_batches()` makes the tf.data of (images [batch_size, ...], labels [batch_size],
    step) that a default run trains on. Each worker builds it and keeps its own
    replicas' slices: elements (images [b, ...], labels [b], step, slot), b = batch_size /
    replicas, slot = the replica's position in the global batch (data and latents are cut
    by it). tf.distribute hands a worker's elements to its devices in turn.
    """
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    rows = batch_size // replicas

    def per_worker(context: Any) -> Any:
        mine = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * mine

        def split(images: Any, labels: Any, step: Any) -> Any:
            slots = tf.range(first, first + mine, dtype=tf.int32)
            images = tf.reshape(images, (replicas, rows, *images.shape[1:]))
            labels = tf.reshape(labels, (replicas, rows))
            return tf.data.Dataset.from_tensor_slices(
                (tf.gather(images, slots), tf.gather(labels, slots),
                 tf.fill([mine], step), slots))

        return make_batches().flat_map(split)

    return strategy.distribute_datasets_from_function(per_worker)


def predict(model: Any, inputs: Any, batch_size: int) -> np.ndarray:
    """model.predict for the default strategy (as before); for a model made in a strategy,
    plain calls on this process's copy of the weights: a distributed predict would need
    every worker to take part, and the sample grids are this process's business."""
    import tensorflow as tf

    if model.distribute_strategy is tf.distribute.get_strategy():
        return model.predict(inputs, batch_size=batch_size, verbose=0)
    parts = inputs if isinstance(inputs, list) else [inputs]
    outputs = []
    for start in range(0, len(parts[0]), batch_size):
        batch = [p[start:start + batch_size] for p in parts]
        outputs.append(np.asarray(model(batch if len(batch) > 1 else batch[0],
                                        training=False)))
    return np.concatenate(outputs)


def check_in_sync(gan: Any, strategy: Any) -> None:
    """Every variable holds the same value on every device of this process (replica
    context updates are per replica; a difference means a replica drifted).

    Raises:
        TrainError: naming the first variable whose copies differ.
    """
    if strategy is None:
        return
    for variable in gan.checkpoint_variables():
        copies = strategy.experimental_local_results(getattr(variable, "value", variable))
        first = np.asarray(copies[0])
        for copy in copies[1:]:
            if not np.array_equal(first, np.asarray(copy)):
                raise TrainError(f"replicas disagree on {variable.path} (a bug: please "
                                 f"report it with the run's command)")


def record(strategy: Any) -> dict:
    """What run.json keeps about the strategy: the replica count (nothing for default)."""
    return {} if strategy is None else {"replicas": strategy.num_replicas_in_sync}


def check_resume(run_json: Path, strategy: Any) -> None:
    """A note when a run resumes on another replica count: it continues correctly (the
    global batch is the same) but not bit-identically (float sums and dropout masks
    depend on the split)."""
    if strategy is None:
        return
    try:
        before = json.loads(run_json.read_text()).get("replicas")
    except (OSError, ValueError, AttributeError):
        return
    now = strategy.num_replicas_in_sync
    if before is not None and before != now:
        print(f"note: this run was trained on {before} replica(s) and resumes on {now}: "
              f"same global batch, but not bit-identical to an uninterrupted run",
              file=sys.stderr, flush=True)
