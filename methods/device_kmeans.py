"""k-means on the device the embedding is on: every restart at once, for a phase's init on a GPU.

scikit-learn's KMeans runs on the CPU: on a GPU each clustering phase (and the pixel baseline,
``methods/kmeans.py``) would copy its data to the host and run 20 restarts there while the
device waits. This is scikit-learn's algorithm in torch, the ``n_init`` restarts as one batch:
greedy k-means++ seeding (2 + log k candidates per center, the one that lowers the potential
most), Lloyd iterations until the centers move less than ``tol`` times the mean variance of the
data, a final assignment, the restart of lowest inertia. Random draws come from torch's generator, so its labels are not scikit-learn's
for the same seed (a CUDA run never matches a CPU run anyway); on a CPU the suite keeps
scikit-learn's (``phase.kmeans_init``). An empty cluster keeps its previous center (scikit-learn
moves it to a far point; on the embeddings of these phases neither happened in our tests).
Every restart's distances are one matrix product against the data (never an (n_init, n, d)
copy of it: 4.4 GB for MNIST-full's pixels), and each restart's sums another.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

DEVICE_TYPES = ("cuda",)  # where k-means runs in torch; elsewhere the suite runs scikit-learn's


class KMeansResult(NamedTuple):
    labels: torch.Tensor  # (n,)
    centers: torch.Tensor  # (n_clusters, d)
    inertia: float
    n_iter: int  # Lloyd iterations of the batch: until its slowest restart converged


@torch.no_grad()
def kmeans(
    z: torch.Tensor, n_clusters: int, n_init: int, seed: int, max_iter: int = 300, tol=1e-4
) -> KMeansResult:
    """The best of ``n_init`` restarts of k-means on the rows of ``z``, computed on ``z``'s
    device."""
    z = z.float()
    n, d = z.shape
    generator = torch.Generator(device=z.device).manual_seed(int(seed))
    centers = _kmeans_plus_plus(z, n_clusters, n_init, generator)  # (R, K, d)
    threshold = tol * z.var(dim=0).mean()
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        labels = _squared_distances(z, centers).argmin(dim=-1)  # (R, n)
        one_hot = torch.nn.functional.one_hot(labels, n_clusters).to(z.dtype)  # (R, n, K)
        sums = one_hot.transpose(1, 2) @ z  # (R, K, d)
        counts = one_hot.sum(dim=1)  # (R, K)
        moved = torch.where(counts[..., None] > 0, sums / counts.clamp(min=1)[..., None], centers)
        shift = (moved - centers).square().sum(dim=(1, 2))
        centers = moved
        if bool((shift <= threshold).all()):  # one host read per iteration, none per sample
            break
    closest, labels = _squared_distances(z, centers).min(dim=-1)
    inertia = closest.sum(dim=1)
    best = int(inertia.argmin())
    return KMeansResult(labels[best], centers[best], float(inertia[best]), n_iter)


def _squared_distances(z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """(R, n, K): every point of ``z`` (n, d) to every restart's centers (R, K, d), as one
    product of the data with all R * K centers."""
    restarts, k, d = centers.shape
    flat = torch.cdist(z, centers.reshape(restarts * k, d)).square()  # (n, R * K)
    return flat.view(-1, restarts, k).transpose(0, 1)


def _kmeans_plus_plus(z, k: int, restarts: int, generator) -> torch.Tensor:
    """Greedy k-means++ seeds for every restart at once, (restarts, k, d)."""
    n, d = z.shape
    trials = 2 + int(math.log(k))
    every = torch.arange(restarts, device=z.device)
    first = torch.randint(n, (restarts,), generator=generator, device=z.device)
    centers = torch.empty(restarts, k, d, device=z.device, dtype=z.dtype)
    centers[:, 0] = z[first]
    closest = torch.cdist(z[first], z).square()  # (R, n)
    for c in range(1, k):
        weights = closest.clamp(min=1e-20)  # (all points on a center: uniform, not an error)
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator)
        to_candidates = torch.cdist(z[candidates.flatten()], z).square().view(restarts, trials, n)
        potential = torch.minimum(closest[:, None], to_candidates)  # (R, trials, n)
        pick = potential.sum(dim=-1).argmin(dim=1)
        centers[:, c] = z[candidates[every, pick]]
        closest = potential[every, pick]
    return centers
