"""Moved to the public ganlite.latents; these names stay for ganlite's own modules."""
from .latents import BLOCK, MAX_SEED, draw  # noqa: F401
