"""A toy loss in one file: reconstruction + gamma * soft k-means distortion.

Drop this file into ``methods/`` (modules there are discovered) or import it before running:
it registers the loss ``soft-kmeans+rec`` (works with every backbone) and the method
``cae-soft-kmeans``; ``--list`` shows both and the loss's own hyperparameter ``temperature``,
which ``--set cae-soft-kmeans.temperature=0.5`` overrides.

Per batch: q_ik = softmax_k(-||z_i - mu_k||^2 / temperature), loss = MSE + gamma * mean_i
sum_k q_ik ||z_i - mu_k||^2, on the unit sphere (z and mu normalized: a
distortion on raw embeddings is minimized by shrinking them, and the clusters merge), the
centers held fixed between updates: every ``update_interval`` iterations they become the
normalized soft means of the whole embedding (an EM step). Labels: nearest center.
"""

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval
from torch import nn

from dcbench.methods import ClusteringPhase, Hyperparameter, register_loss, register_method
from dcbench.methods.table1 import deep_method
from dcbench.methods.training import autocast, embed, make_optimizer


@register_loss("soft-kmeans+rec", "toy: reconstruction + gamma * soft k-means distortion")
class SoftKMeansClustering(ClusteringPhase):
    params = ("optimizer", "lr", "momentum", "batch_size", "gamma", "update_interval",
              "maxiter", "kmeans_n_init", "init")  # fmt: skip
    hyperparameters = {
        "temperature": Hyperparameter(
            0.1, [Interval(Real, 0, None, closed="neither")],
            "softness of the assignments (-> 0: hard k-means)",
        )
    }  # fmt: skip
    terms = ("rec", "distortion")

    def predict(self, z, centers):
        return torch.cdist(F.normalize(z), centers).argmin(dim=1)

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None):
        est = self.est
        self.start(y)
        km = self.initial_clustering(embed(model, x))
        centers = F.normalize(
            torch.as_tensor(km.cluster_centers_, dtype=torch.float32, device=x.device)
        )
        optimizer = make_optimizer(est.optimizer, model.parameters(), est.lr, est.momentum)
        labels = torch.as_tensor(km.labels_, device=x.device)
        self.log(0, labels, part="kmeans_init")
        model.train()
        for ite in range(1, est.maxiter + 1):
            start = (ite - 1) * est.batch_size % x.shape[0]
            xb = x[start : start + est.batch_size]
            with autocast(x.device, est.precision):
                z, rec = model(xb)
            d2 = torch.cdist(F.normalize(z.float()), centers).square()
            distortion = (self.assign(d2) * d2).sum(dim=1).mean()
            mse = F.mse_loss(rec.float(), xb)
            self.step(
                optimizer, mse + est.gamma * distortion, {"rec": mse, "distortion": distortion}
            )
            if ite % est.update_interval == 0 or ite == est.maxiter:
                z = F.normalize(embed(model, x, precision=est.precision))
                q = self.assign(torch.cdist(z, centers).square())
                centers = F.normalize(q.T @ z)  # the soft means, on the sphere
                new = self.predict(z, centers)
                self.log(ite, new, changed_from=labels)
                labels = new
        return self.result(labels, centers, est.maxiter)

    def assign(self, d2: torch.Tensor) -> torch.Tensor:
        return F.softmax(-d2 / self.est.temperature, dim=1)


register_method(deep_method("cae-soft-kmeans", "cae", "soft-kmeans+rec", "toy: CAE + soft k-means loss",
                            params={"optimizer": "adam", "lr": 0.001, "gamma": 0.1}))  # fmt: skip
