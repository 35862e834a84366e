"""Shards of a run: shard I of K (I counted from 0) is one contiguous slice of the run's
index range, so that K processes (or machines) can write one run into one folder, and
its npy parts concatenate in shard order into the single run's arrays.

The names (five-digit, zero-padded, like other data tools' `-00003-of-00016` parts):
  .ganlite-run-00003-of-00016.json   shard 3's manifest (the run's manifest + "shard")
  .ganlite-00003-of-00016.lock       shard 3's lock (one writer per shard)
  images-00003-of-00016.npy          shard 3's part (npy runs; labels-... likewise)
  .ganlite-shards.lock               held for a moment while a shard checks its siblings'
                                     manifests and writes its own
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ._errors import UsageError, describe

# Five digits keep every name the same width (sorted names = shard order).
MAX_SHARDS = 99_999
MANIFESTS_LOCK = ".ganlite-shards.lock"
MANIFEST_NAME = re.compile(r"^\.ganlite-run-(\d{5})-of-(\d{5})\.json$")
LOCK_NAME = re.compile(r"^\.ganlite-(\d{5})-of-(\d{5})\.lock$")
PART_NAME = re.compile(r"^(images|labels)-(\d{5})-of-(\d{5})\.npy$")


def shard_range(n: int, index: int, count: int) -> tuple[int, int]:
    """Images lo .. hi - 1 of a run of n are shard `index` of `count`: contiguous ranges
    in shard order, the first n % count of them one image longer (empty when count > n).
    """
    q, r = divmod(n, count)
    lo = index * q + min(index, r)
    return lo, lo + q + (1 if index < r else 0)


def owner(i: int, n: int, count: int) -> int | None:
    """The shard of `count` that holds image i of a run of n (None: i is not in the run)."""
    if not 0 <= i < n:
        return None
    q, r = divmod(n, count)
    long_end = r * (q + 1)       # the first r shards hold q + 1 images each
    return i // (q + 1) if i < long_end else r + (i - long_end) // q


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""
    index: int
    count: int

    @property
    def tag(self) -> str:
        return f"{self.index:05d}-of-{self.count:05d}"

    @property
    def manifest_name(self) -> str:
        return f".ganlite-run-{self.tag}.json"

    @property
    def lock_name(self) -> str:
        return f".ganlite-{self.tag}.lock"

    def part_name(self, stem: str) -> str:
        """images-00003-of-00016.npy (stem "images") or labels-... ."""
        return f"{stem}-{self.tag}.npy"

    def range(self, n: int) -> tuple[int, int]:
        return shard_range(n, self.index, self.count)

    def record(self, n: int) -> dict:
        """What the shard's manifest records of it, beside the run's manifest."""
        lo, hi = self.range(n)
        return {"index": self.index, "count": self.count, "start": lo, "stop": hi}


def check_shard(value: object) -> Shard | None:
    """None, or (index, count) with 0 <= index < count <= MAX_SHARDS, as a Shard.

    Raises:
        UsageError: naming the bad value and the valid range.
    """
    if value is None:
        return None
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in value)):
        raise UsageError(f"shard must be a pair (index, count) of integers, index counted "
                         f"from 0, got {describe(value)}")
    index, count = int(value[0]), int(value[1])
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"shard count must be between 1 and {MAX_SHARDS}, got {count}")
    if not 0 <= index < count:
        raise UsageError(f"shard index must be between 0 and {count - 1} (counted from 0) "
                         f"for {count} shards, got {index}")
    return Shard(index, count)


def parse_name(pattern: re.Pattern, name: str) -> Shard | None:
    """The shard a manifest or lock name belongs to (None: not such a name)."""
    match = pattern.match(name)
    if not match:
        return None
    index, count = int(match[match.re.groups - 1]), int(match[match.re.groups])
    return Shard(index, count) if 0 <= index < count else None


def is_shard_file(name: str) -> bool:
    """Shard manifests, parts and locks (the names a sharded run writes, images aside)."""
    return bool(MANIFEST_NAME.match(name) or PART_NAME.match(name) or LOCK_NAME.match(name)
                or name == MANIFESTS_LOCK)


def is_lock(name: str) -> bool:
    return bool(LOCK_NAME.match(name)) or name == MANIFESTS_LOCK
