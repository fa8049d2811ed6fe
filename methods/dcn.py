"""DCN (Yang et al., ICML 2017): an embedding made k-means-friendly by training it with k-means.

Loss ``kmeans+rec``, per sample: ||x - g(f(x))||^2 + gamma * ||f(x) - M s||^2, with hard
assignments s (one-hot) and centers M; ``gamma`` is the paper's lambda / 2 (the authors' code
weights the two terms with ``beta`` and ``lbd``: gamma = beta / lbd). Both terms are summed
over features and averaged over the batch, as in the code.

The clustering phase follows the authors' code (boyangumn/DCN-New, ``multi_layer_km.py`` with
the settings of ``run_raw_mnist.py``). After k-means (``kmeans_n_init``) on the pretrained
embedding, each batch, in data order:

1. one network step on the loss, with the assignments s of the previous pass held fixed
   (SGD with Nesterov momentum; biases at twice the learning rate, as in the code);
2. the batch's assignments = nearest center of its new embedding (all with the old centers);
3. the incremental center update m_k <- m_k - (1/c_k)(m_k - f(x_i)), sample by sample, where
   c_k counts the samples assigned to k so far; the counts start at 100 (the code's value).

Every ``update_interval`` iterations (the code: 10 epochs) k-means on the whole embedding,
started from the current centers, refreshes the centers and assignments (the counts are kept).
The final labels come from that same refresh after the last iteration; the code's reported
numbers are its labels right after the refresh at epoch 50.

Where we differ from the code (also in the README): the autoencoder is our shared ``sae`` (or
``cae``), pretrained as for the other methods, where the code pretrains its own tied-weight SAE
(250 layer-wise + 250 end-to-end epochs) on MNIST scaled by 5.1; the last partial batch is kept
(the code truncates the data to a multiple of the batch size); one history entry per epoch.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from sklearn.cluster import KMeans
from torch import nn

from dcbench.methods.losses import register_loss
from dcbench.methods.phase import ClusteringPhase, PhaseResult
from dcbench.methods.registry import register_method
from dcbench.methods.table1 import DIGITS_PRETRAIN, deep_method
from dcbench.methods.training import autocast, embed, make_optimizer

INITIAL_COUNT = 100  # the authors' code starts every cluster's count at 100


def assign(z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Hard assignments: the index of the nearest center (squared Euclidean distance)."""
    return torch.cdist(z, centers).argmin(dim=1)


def update_centers(
    centers: torch.Tensor, counts: torch.Tensor, z: torch.Tensor, s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The incremental update m_k <- m_k - (1/c_k)(m_k - z_i), c_k += 1 first, for each sample i
    assigned to k, in one step: sample by sample it is a running mean, so the result is
    (c_k m_k + sum of its new z_i) / (c_k + n_k). Returns new centers and counts."""
    added = torch.zeros_like(centers).index_add_(0, s, z.to(centers.dtype))
    new_counts = counts + torch.bincount(s, minlength=centers.shape[0]).to(counts.dtype)
    return (counts[:, None] * centers + added) / new_counts[:, None], new_counts


def dcn_loss(x, rec, z, targets, gamma: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per sample ||x - rec||^2 + gamma ||z - M s||^2 (sums over features), batch mean."""
    rec_term = (rec.float() - x).square().flatten(1).sum(dim=1).mean()
    km_term = (z.float() - targets).square().sum(dim=1).mean()
    return rec_term + gamma * km_term, {"rec": rec_term, "kmeans": km_term}


def dcn_optimizer(est, model: nn.Module) -> torch.optim.Optimizer:
    """The code's update: Nesterov momentum, biases at twice the learning rate (for ``sgd``)."""
    if est.optimizer != "sgd":
        return make_optimizer(est.optimizer, model.parameters(), est.lr, est.momentum)
    named = list(model.named_parameters())
    weights = [p for n, p in named if not n.endswith("bias")]
    biases = [p for n, p in named if n.endswith("bias")]
    return torch.optim.SGD(
        [{"params": weights}, {"params": biases, "lr": 2 * est.lr}],
        lr=est.lr,
        momentum=est.momentum,
        nesterov=est.momentum > 0,
    )


@register_loss(
    "kmeans+rec",
    "DCN: reconstruction + gamma * ||f(x) - M s||^2, hard assignments, incremental centers",
)
class KMeansFriendlyClustering(ClusteringPhase):
    terms = ("rec", "kmeans")
    params = (
        "optimizer", "lr", "momentum", "batch_size", "gamma",
        "update_interval", "maxiter", "kmeans_n_init", "init",
    )  # fmt: skip

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return assign(z, centers.to(z.dtype))

    def _refresh(self, model, x, centers) -> tuple[torch.Tensor, torch.Tensor]:
        """k-means on the whole embedding started from the current centers (the code's refresh)."""
        z = embed(model, x, precision=self.est.precision)
        km = KMeans(self.est.n_clusters, init=centers.cpu().numpy(), n_init=1).fit(z.cpu().numpy())
        c = torch.tensor(km.cluster_centers_, dtype=torch.float32, device=x.device)
        self.lap("kmeans_refresh")
        return c, torch.tensor(km.labels_, dtype=torch.long, device=x.device)

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        self.start(y)  # not checkpointed yet: an interrupted phase starts again
        est = self.est
        km = self.initial_clustering(embed(model, x))
        centers = torch.tensor(km.cluster_centers_, dtype=torch.float32, device=x.device)
        s = torch.tensor(km.labels_, dtype=torch.long, device=x.device)
        counts = torch.full((est.n_clusters,), float(INITIAL_COUNT), device=x.device)
        optimizer = dcn_optimizer(est, model)

        n, bs = x.shape[0], est.batch_size
        per_epoch = math.ceil(n / bs)
        self.log(0, s, part="kmeans_init", delta_label=0.0)
        s_logged = s.clone()
        start = 0
        model.train()
        maxiter = int(est.maxiter)
        for ite in range(1, maxiter + 1):
            stop = min(start + bs, n)
            xb = x[start:stop]
            with autocast(x.device, est.precision):  # 1. network step, assignments held fixed
                z, rec = model(xb)
            self.step(optimizer, *dcn_loss(xb, rec, z, centers[s[start:stop]], est.gamma))
            zb = embed(model, xb, precision=est.precision)  # 2. assignments of the new embedding
            s[start:stop] = assign(zb, centers)
            centers, counts = update_centers(centers, counts, zb, s[start:stop])  # 3. centers
            start = stop if stop < n else 0
            if ite % est.update_interval == 0 or ite == maxiter:
                self.lap("steps")
                centers, s = self._refresh(model, x, centers)
            if ite % per_epoch == 0 or ite == maxiter:
                self.log(ite, s, changed_from=s_logged)
                s_logged = s.clone()
        if maxiter == 0:
            centers, s = self._refresh(model, x, centers)
        return self.result(s, centers, maxiter)


def epochs(n_samples: int, n_epochs: int, batch_size: int = 256) -> int:
    """Iterations in ``n_epochs`` passes over ``n_samples`` (the last partial batch included)."""
    return n_epochs * math.ceil(n_samples / batch_size)


# run_raw_mnist.py: lbd = beta = 1, finetune_lr 1e-4, mu 0.9, batch 256, 50 epochs, k-means
# refresh every 10 epochs; KMeans(n_init=10) for the initial clustering.
DCN = {"optimizer": "sgd", "lr": 0.0001, "momentum": 0.9, "batch_size": 256, "gamma": 1.0,
       "kmeans_n_init": 10}  # fmt: skip
SIZES = {"mnist-full": 70000, "fashion-mnist": 70000, "mnist-test": 10000, "usps": 9298}
SCHEDULE = {
    d: {"maxiter": epochs(n, 50), "update_interval": epochs(n, 10)} for d, n in SIZES.items()
}
DIGITS = {"maxiter": epochs(1797, 40), "update_interval": epochs(1797, 10)}  # ours: smoke test

# Yang et al. (2017), raw MNIST (all 70,000 images): ACC 0.83, NMI 0.81.
REFERENCE = {"mnist-full": (83.0, 81.0)}
SOURCE = "Yang et al. (ICML 2017)"

register_method(replace(
    deep_method("dcn", "sae", "kmeans+rec",
                "DCN: SAE + reconstruction + k-means loss (hard assignments, incremental centers)",
                params={**DCN, **SCHEDULE["mnist-full"]},
                dataset_params={**SCHEDULE, "digits": {**DIGITS_PRETRAIN, **DIGITS}}, paper_name="DCN"),
    reference=REFERENCE, reference_source=SOURCE,
))  # fmt: skip
register_method(
    deep_method("dcn-conv", "cae", "kmeans+rec", "DCN's loss on the CAE backbone",
                params={**DCN, **SCHEDULE["mnist-full"]},
                dataset_params={**SCHEDULE, "digits": {**DIGITS_PRETRAIN, **DIGITS}})
)  # fmt: skip
