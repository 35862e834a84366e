"""The sample-quality metrics ganlite's evaluator computes, on feature vectors and class
probabilities (numpy only): public, so that training curves and the runtime use the same
definitions.

- frechet_distance: the Frechet distance between two Gaussians (FID's formula; FCD when the
  features come from a classifier).
- classifier_score: exp(E_x KL(p(y|x) || p(y))), the Inception / TF-GAN classifier score.
- knn_radii and coverage: the k-NN balls of improved precision and recall
  (Kynkaanniemi et al. 2019): precision = coverage(fake, real, knn_radii(real)), recall =
  coverage(real, fake, knn_radii(fake)).
"""
from __future__ import annotations

import numpy as np

from ._errors import UsageError, describe

__all__ = ["classifier_score", "coverage", "frechet_distance", "knn_radii"]

# Distances are computed in chunks of this many rows (memory: chunk x len(points) floats).
_CHUNK = 1000


def _matrix(name: str, value: object, ndim: int, min_rows: int = 1) -> np.ndarray:
    """A finite float array of `ndim` dimensions (with at least min_rows rows), or
    UsageError naming the argument."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" \
            or value.ndim != ndim or (ndim and len(value) < min_rows) or 0 in value.shape:
        raise UsageError(f"{name} must be a non-empty {ndim}-D numeric array"
                         f"{f' of at least {min_rows} rows' if min_rows > 1 else ''}, got "
                         f"{describe(value)}")
    if not np.isfinite(value).all():
        raise UsageError(f"{name} holds NaN or infinite values")
    return value


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), via symmetric eigendecompositions
    (stable for singular covariances).

    Args:
        mu1, mu2: means, [d].
        sigma1, sigma2: covariance matrices, [d, d] (symmetric positive semi-definite).

    Returns:
        The distance (>= 0 up to rounding).

    Raises:
        UsageError: shapes that do not agree, or non-finite values.
    """
    mu1, mu2 = _matrix("mu1", mu1, 1), _matrix("mu2", mu2, 1)
    sigma1, sigma2 = _matrix("sigma1", sigma1, 2), _matrix("sigma2", sigma2, 2)
    d = len(mu1)
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise UsageError(f"frechet_distance needs means [d] and covariances [d, d] of one d, "
                         f"got {list(mu1.shape)}, {list(sigma1.shape)}, {list(mu2.shape)}, "
                         f"{list(sigma2.shape)}")
    vals, vecs = np.linalg.eigh(sigma1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(middle, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def classifier_score(probs: np.ndarray) -> float:
    """exp(mean over samples of KL(p(y|x) || p(y))), p(y) the mean of the rows: 1 for
    identical predictions, the number of classes for confident, balanced ones.

    Args:
        probs: class probabilities, [n, classes], rows summing to 1.

    Returns:
        The score, between 1 and the number of classes.

    Raises:
        UsageError: not a finite 2-D array of probabilities in [0, 1].
    """
    probs = _matrix("probs", probs, 2)
    if (probs < 0).any() or (probs > 1).any():
        raise UsageError("probs must be probabilities in [0, 1]")
    marginal = probs.mean(axis=0, keepdims=True)
    eps = 1e-12
    kl = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def knn_radii(features: np.ndarray, k: int = 3, chunk: int = _CHUNK) -> np.ndarray:
    """Distance of each point to its k-th nearest other point of the same set.

    Args:
        features: [n, d] feature vectors, n > k.
        k: which neighbour (1 = the nearest other point).
        chunk: rows per block of the distance computation (memory: chunk x n floats).

    Returns:
        float32 [n] radii.

    Raises:
        UsageError: features not a finite [n, d] array with n > k, or k / chunk not
            positive integers.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UsageError(f"k must be a positive integer, got {describe(k)}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise UsageError(f"chunk must be a positive integer, got {describe(chunk)}")
    features = _matrix("features", features, 2, min_rows=int(k) + 1)
    norms = _sq_norms(features)
    radii = np.empty(len(features), np.float32)
    for lo in range(0, len(features), chunk):
        block = features[lo:lo + chunk]
        d2 = norms[lo:lo + chunk, None] + norms[None, :] - 2 * block @ features.T
        # k + 1: the point itself is its own nearest neighbour at distance 0.
        radii[lo:lo + chunk] = np.sqrt(np.maximum(
            np.partition(d2, k, axis=1)[:, k], 0))
    return radii


def coverage(queries: np.ndarray, points: np.ndarray, radii: np.ndarray,
             chunk: int = _CHUNK) -> float:
    """Share of queries inside at least one ball (points[j], radii[j]).

    Args:
        queries: [m, d] feature vectors.
        points: [n, d] ball centres.
        radii: [n] ball radii (knn_radii(points)).
        chunk: queries per block of the distance computation.

    Returns:
        A share between 0 and 1.

    Raises:
        UsageError: arrays that are not finite, or whose shapes do not agree.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise UsageError(f"chunk must be a positive integer, got {describe(chunk)}")
    queries, points = _matrix("queries", queries, 2), _matrix("points", points, 2)
    radii = _matrix("radii", radii, 1)
    if queries.shape[1] != points.shape[1] or radii.shape != (len(points),):
        raise UsageError(f"coverage needs queries [m, d], points [n, d] and radii [n], got "
                         f"{list(queries.shape)}, {list(points.shape)}, {list(radii.shape)}")
    q_norms, p_norms = _sq_norms(queries), _sq_norms(points)
    r2 = radii.astype(np.float64) ** 2
    inside = 0
    for lo in range(0, len(queries), chunk):
        d2 = (q_norms[lo:lo + chunk, None] + p_norms[None, :]
              - 2 * queries[lo:lo + chunk] @ points.T)
        inside += int((d2 <= r2[None, :]).any(axis=1).sum())
    return inside / len(queries)
