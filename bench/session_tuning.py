"""Does tuning the onnxruntime session help the default model? Images/s at batch 1 and
10,000 for graph optimization levels, thread counts, and IO binding with a preallocated
output (median of 5).

    .venv-runtime/bin/python bench/session_tuning.py      (any env with ganlite)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from speed import median_rate as rate  # noqa: E402  (bench/ is on sys.path)

import ganlite  # noqa: E402
from ganlite.latents import draw  # noqa: E402


def main():
    path = ganlite.list_models()[ganlite.DEFAULT_MODEL]
    data = path.read_bytes()
    card = ganlite.read_card(path)
    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    rows = []
    for batch in (1, 10_000):
        z, labels = draw(0, 0, batch, card["latent_dim"], card["num_classes"])
        feeds = {"z": z, "label": labels}
        for level in levels:
            for threads in (0, 1, 2):
                options = ort.SessionOptions()
                options.graph_optimization_level = levels[level]
                options.intra_op_num_threads = threads
                session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
                plain = rate(lambda: session.run(["image"], feeds), batch)
                binding = session.io_binding()
                binding.bind_cpu_input("z", z)
                binding.bind_cpu_input("label", labels)
                out = np.empty((batch, 28, 28), np.uint8)
                binding.bind_output("image", "cpu", 0, np.uint8, out.shape,
                                    out.ctypes.data)
                bound = rate(lambda: session.run_with_iobinding(binding), batch)
                rows.append({"batch": batch, "opt_level": level, "threads": threads or "default",
                             "run": round(plain), "io_binding": round(bound)})
                print(json.dumps(rows[-1]), flush=True)
    (ROOT / "bench" / "results" / "session_tuning.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
