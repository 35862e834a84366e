"""Cut the small real fixtures in tests/data from the full IDX files.

    python tests/data/make_fixture.py ../shared/datasets/mnist tests/data/mnist-small
    python tests/data/make_fixture.py /usr/share/datasets/fashion-mnist tests/data/fashion-small

The first 600 training and 200 test digits, in the same four IDX .gz files.
"""
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

COUNTS = {"train": 600, "t10k": 200}


def cut(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split, count in COUNTS.items():
        for kind, header in (("images-idx3", 16), ("labels-idx1", 8)):
            name = f"{split}-{kind}-ubyte.gz"
            raw = gzip.open(src / name).read()
            head = bytearray(raw[:header])
            head[4:8] = struct.pack(">I", count)
            item = 784 if kind.startswith("images") else 1
            body = raw[header:header + count * item]
            # mtime=0: the same bytes on every run
            with gzip.GzipFile(dst / name, "wb", mtime=0) as f:
                f.write(bytes(head) + body)
    labels = np.frombuffer(gzip.open(dst / "train-labels-idx1-ubyte.gz").read()[8:], np.uint8)
    print("train label counts:", np.bincount(labels, minlength=10))


if __name__ == "__main__":
    cut(Path(sys.argv[1]), Path(sys.argv[2]))
