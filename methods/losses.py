"""Clustering losses, each with the phase that trains it after pretraining.

- ``none``: two-stage baseline, k-means on the pretrained embedding.
- ``kl``: DEC: KL(P || Q) on the encoder, the decoder dropped.
- ``kl+rec``: IDEC / DCEC: gamma * KL(P || Q) + reconstruction MSE.

A phase gets the pretrained autoencoder and the data, and returns labels, centers and a history.
A new loss is a :class:`~dcbench.methods.phase.ClusteringPhase` in a module of its own,
registered with ``register_loss``; it works with every backbone. This module also holds what
several losses share: the initial clustering, the Student's t assignment and the targets.
"""

from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval
from torch import nn

from dcbench.core.registry import Registry
from dcbench.methods.phase import ClusteringPhase, Hyperparameter, PhaseResult
from dcbench.methods.training import autocast, embed, make_optimizer

LOSSES = Registry("loss")


def register_loss(name: str, description: str):
    """``@register_loss(name, description)`` on a :class:`ClusteringPhase` subclass. Its own
    ``hyperparameters`` become ``DeepClusterer`` parameters; two losses may share one only
    with the same default and constraints."""
    register = LOSSES.register(name, description=description)

    def add(phase: type[ClusteringPhase]) -> type[ClusteringPhase]:
        declared = loss_hyperparameters()
        for key, hp in phase.hyperparameters.items():
            if key in declared and declared[key] != hp:
                raise ValueError(
                    f"loss '{name}' declares hyperparameter '{key}' unlike another loss; "
                    "share it with the same default, constraints and doc, or rename it"
                )
        return register(phase)

    return add


def loss_hyperparameters() -> dict[str, Hyperparameter]:
    """Every registered loss's own hyperparameters, by name."""
    return {k: hp for name in LOSSES for k, hp in LOSSES.get(name).hyperparameters.items()}


TARGETS = ("auto", "dec", "depict")


def soft_assign(z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Student's t kernel: q_ij proportional to (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha + 1) / 2)."""
    dist2 = torch.cdist(z, centers).square()
    q = (1.0 + dist2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return q / q.sum(dim=-1, keepdim=True)  # (last axes: a stack of seeds works the same)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) normalized per row, f_j = sum_i q_ij (over the whole dataset)."""
    weight = q.square() / q.sum(dim=-2, keepdim=True)
    return weight / weight.sum(dim=-1, keepdim=True)


def frequency_prior_target(q: torch.Tensor) -> torch.Tensor:
    """DEPICT's target: p_ik ∝ q_ik / sqrt(f_k), f_k = sum_i q_ik, normalized per row. Dividing
    by the square root of the cluster's soft size keeps large clusters from taking over."""
    weight = q / q.sum(dim=-2, keepdim=True).sqrt()
    return weight / weight.sum(dim=-1, keepdim=True)


def make_target(q: torch.Tensor, target: str, default: str) -> torch.Tensor:
    """The target P from Q by ``target`` (``est.target``; ``auto`` means the loss's own
    ``default``): ``dec`` is q^2 / f (DEC, and DEPICT's released code), ``depict`` is
    q / sqrt(f) (DEPICT's paper)."""
    name = default if target == "auto" else target
    return target_distribution(q) if name == "dec" else frequency_prior_target(q)


@register_loss("none", "no clustering loss: k-means (n_init 20) on the pretrained embedding")
class KMeansOnEmbedding(ClusteringPhase):
    params = ("kmeans_n_init", "init")

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        self.start(y)  # nothing to checkpoint: one k-means
        km = self.initial_clustering(embed(model, x))
        self.log(0, km.labels_, part="kmeans_init")
        return self.result(km.labels_, km.cluster_centers_, 0)

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return torch.cdist(z, centers).argmin(dim=1)


@register_loss(
    "kl",
    "DEC: KL(P||Q) with Student-t Q and a target P refreshed every T iterations; decoder dropped",
)
class StudentTClustering(ClusteringPhase):
    """The DEC / IDEC / DCEC clustering phase, as in the authors' Keras code:
    k-means init of trainable centers; every ``update_interval`` (T) iterations, Q over the
    whole dataset, the target P from it (held fixed until the next update), and the stop test
    (fraction of changed labels < tol); batches of ``batch_size`` taken in order."""

    reconstruct = False
    terms: tuple[str, ...] = ("kl",)
    params = (
        "optimizer", "lr", "momentum", "batch_size",
        "update_interval", "maxiter", "kmeans_n_init", "init", "target",
    )  # fmt: skip
    hyperparameters = {
        "alpha": Hyperparameter(
            1.0, [Interval(Real, 0, None, closed="neither")],
            "degrees of freedom of the Student's t soft assignment",
        ),
        "tol": Hyperparameter(
            0.001, [Interval(Real, 0, 1, closed="both")],
            "stop when fewer than this fraction of labels changed between two target updates",
        ),
    }  # fmt: skip

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return soft_assign(z, centers, self.est.alpha).argmax(dim=1)

    def batch_loss(self, model, centers, xb, pb) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.reconstruct:
            z, rec = model(xb)
        else:
            z = model.encode(xb)
        q = soft_assign(z.float(), centers, self.est.alpha)
        # F.kl_div(q.log(), pb, reduction="batchmean") spelled out, the same ops (bitwise the
        # same result): kl_div has no vmap rule, and stacked seeds would loop over it
        kl = (torch.xlogy(pb, pb) - pb * q.log()).sum() / q.shape[0]
        if not self.reconstruct:
            return kl, {"kl": kl}
        mse = F.mse_loss(rec.float(), xb)
        return self.est.gamma * kl + mse, {"kl": kl, "rec": mse}

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        """With a ``checkpoint``, resumes from its saved state and saves at target updates
        (at most every ``CHECKPOINT_SECONDS``); a resumed run gives the uninterrupted result."""
        est = self.est
        saved = self.start(y, checkpoint)
        if saved is None:
            km = self.initial_clustering(embed(model, x))
            initial_centers, initial_labels = km.cluster_centers_, km.labels_
        else:
            initial_centers, initial_labels = saved["centers"], saved["labels_last"]
        centers = nn.Parameter(
            torch.as_tensor(initial_centers, dtype=torch.float32, device=x.device)
        )
        trained = list(model.encoder.parameters()) + [centers]
        if self.reconstruct:
            trained += list(model.decoder.parameters())
        optimizer = make_optimizer(est.optimizer, trained, est.lr, est.momentum)

        n, bs = x.shape[0], est.batch_size
        labels_last = torch.as_tensor(initial_labels, device=x.device)
        start = 0
        first = 0
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            self.resume(saved)
            first, start = saved["iteration"], saved["start"]
            self._sums = {k: v.to(x.device) for k, v in saved["sums"].items()}
            self._steps = saved["steps_since"]
            self.lap("checkpoints")
        p = None
        ite = first
        model.train()
        for ite in range(first, int(est.maxiter)):
            if ite % est.update_interval == 0:
                self.lap("steps")  # the steps since the last update end here
                if ite > first and self.checkpoint_due():
                    self.save({
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "centers": centers.detach().cpu().numpy(),
                        "labels_last": labels_last.cpu().numpy(), "iteration": ite,
                        "start": start, "steps_since": self._steps,
                        "sums": {k: v.cpu() for k, v in self._sums.items()},
                    })  # fmt: skip
                q = soft_assign(
                    embed(model, x, precision=est.precision), centers.detach(), est.alpha
                )
                p = make_target(q, est.target, default="dec")
                labels = q.argmax(dim=1)
                # the fraction changed is the only host sync per interval
                entry = self.log(ite, labels, changed_from=labels_last, part="target_updates")
                labels_last = labels
                if ite > 0 and entry["delta_label"] < est.tol:
                    final = labels  # argmax q of the current model: no second pass over the data
                    break
            stop = min(start + bs, n)
            with autocast(x.device, est.precision):
                loss, terms = self.batch_loss(model, centers, x[start:stop], p[start:stop])
            self.step(optimizer, loss, terms)
            start = stop if stop < n else 0  # in order, wrapping after the last (partial) batch
        else:
            ite = int(est.maxiter)
            final = self.predict(embed(model, x, precision=est.precision), centers.detach())
            self.lap("steps")  # includes the final pass
        return self.result(final, centers, ite)


@register_loss(
    "kl+rec", "IDEC/DCEC: gamma * KL(P||Q) + reconstruction MSE (local structure preserved)"
)
class StudentTClusteringWithReconstruction(StudentTClustering):
    reconstruct = True
    terms = ("kl", "rec")
    params = (*StudentTClustering.params, "gamma")
