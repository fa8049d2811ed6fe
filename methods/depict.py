"""DEPICT (Ghasedi Dizaji et al., ICCV 2017): a softmax clustering head on a denoising
convolutional autoencoder, trained by relative entropy against targets with a cluster-frequency
prior, regularized by layer-wise reconstruction.

- Backbone ``depict-cae`` (works with every loss): the authors' MNIST/USPS network. Encoder:
  dropout 0.1 on the input, conv 50 4x4 stride 2 (no padding), LeakyReLU 0.01, dropout 0.1,
  conv 50 5x5 stride 2 pad 2, LeakyReLU, dense to the embedding, tanh. Decoder: dense, LeakyReLU,
  deconv 50 5x5 stride 2 crop 2, LeakyReLU, deconv 4x4 stride 2, tanh. Glorot-uniform weights,
  zero biases (Lasagne's defaults). Images are mapped to [-1, 1] inside (the code scales
  (x - 127.5) / 127.5); ``forward`` returns the reconstruction in the input's scale. Dropout
  is on in training mode (the noisy pathway) and off in eval mode (the clean one).
  Its ``reconstruction_loss`` is the code's: noisy pathway's output vs the input, plus 0.1 x
  each decoder layer's output vs the clean encoder's features of the same size (MSE each).
  The clean features are not detached (Theano differentiates through them too).
- Loss ``softmax-kl+rec`` (works with every backbone; without dropout both pathways are one):
  the initial clustering of the clean embedding, by ``init`` as the code does: k-means
  (``kmeans_n_init``; the code: 40) on MNIST-full, AC-PIC (:mod:`dcbench.methods.acpic`) on
  USPS and MNIST-test; the head's weights are the centroids (AC-PIC: the clusters' means)
  scaled to unit norm, its biases 0. Then, as the code's ``train_RLC``:
  1. init stage: cross-entropy of the noisy predictions against the initial labels plus
     reconstruction, until the NMI between the clean predictions and those labels has not
     improved for 5 epochs (at most 1000); the best weights are kept;
  2. main stage, one target per epoch: P from the clean predictions Q with a frequency prior,
     by ``target``: the loss's own (``auto``) is the paper's p_ik ∝ q_ik / sqrt(sum_i q_ik),
     ``dec`` the released code's q_ik^2 / sum_i q_ik; each batch minimizes reconstruction +
     ``gamma`` x KL(P || Q_noisy) (the code's cross-entropy, same gradient); Q of a batch is
     stored from the clean pathway right after its step; P is recomputed at the end of the epoch
     from the stored Q; stop when the mean squared change of P is below 1e-7.
  The final labels are the clean predictions' argmax. ``cluster_centers_`` holds the head as
  (K, embedding_dim + 1): weights, then the bias.
- Method ``depict``: Adam lr 1e-4, batch 100 for pretraining and clustering, gamma 1 (the code's
  ``cluster_hyperparam``, reconstruction weight 1), embedding 10 (the code: number of clusters),
  the code's target q^2 / f: it is what produced the published numbers, and on USPS the
  paper's q / sqrt(f) lets the labels drift away from the initial clusters over the main stage
  (bench/results/depict-ablation.md).

Where we differ (also in the README):
- Method ``depict`` trains towards the code's target q^2 / f (DEC's); the paper writes
  q / sqrt(f), which the code has commented out next to it (``--set depict.target=depict``).
- The head starts at the AC-PIC clusters' unit-norm means; the code's AC-PIC branch divides
  the (K, d) mean matrix by the norms along the wrong axis and hands it to a (d, K) layer
  (the same shape only because d = K = 10), so its head starts at a transposed, mis-scaled
  matrix. The init stage fits the head to the AC-PIC labels either way.
- Pretraining runs a fixed number of epochs (300 by default, ours); the code trains up to 4000
  epochs and early-stops on a 10% validation split (patience 100), keeping the best weights.
- The init stage's early stopping looks at all samples; the code holds out 10% (split with the
  true labels as strata). Every pass keeps the last partial batch (the code drops it).
- ``maxiter`` bounds both stages together (the code: 1000 + 4000 epochs).
- The history logs ACC/NMI of the clean predictions' labels (the code prints the targets').
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from dcbench.core.metrics import nmi_geometric
from dcbench.methods.backbones import (
    BackboneSpec,
    keras_init_,
    reconstruction_loss,
    register_backbone,
)
from dcbench.methods.layers import Conv2d, ConvTranspose2d
from dcbench.methods.losses import make_target, register_loss
from dcbench.methods.phase import ClusteringPhase, PhaseResult
from dcbench.methods.registry import register_method
from dcbench.methods.table1 import DIGITS_PRETRAIN, deep_method
from dcbench.methods.training import autocast, embed, make_optimizer, rng_state, set_rng_state

LEAK = 0.01  # LeakyRectify(0.01)
DROPOUT = (0.1, 0.1, 0.0)  # on the input, after conv1, after conv2 (the code's MNIST/USPS values)
LAYER_WEIGHT = 0.1  # weight of each hidden layer's reconstruction (hlayer_loss_param)
INIT_PATIENCE = 5  # init stage: epochs without a better NMI before stopping
INIT_MAX_EPOCHS = 1000
TARGET_TOL = 1e-7  # stop when the mean squared change of the targets is below this


class DepictAutoencoder(nn.Module):
    """The DEPICT network for MNIST-sized and USPS-sized images (any H, W >= 4)."""

    def __init__(
        self, input_shape: tuple[int, int, int], embedding_dim: int = 10, filters=(50, 50)
    ):
        super().__init__()
        c, h, w = self.input_shape = tuple(input_shape)
        if h < 4 or w < 4:
            raise ValueError(f"the DEPICT network needs images of at least 4x4; got {h}x{w}")
        f1, f2 = filters
        h1, w1 = (h - 4) // 2 + 1, (w - 4) // 2 + 1  # conv 4x4 stride 2, no padding
        h2, w2 = (h1 - 1) // 2 + 1, (w1 - 1) // 2 + 1  # conv 5x5 stride 2, padding 2
        self.feature_shape = (f2, h2, w2)
        self.dropout = DROPOUT
        self.encoder = nn.ModuleDict(
            {
                "conv1": Conv2d(c, f1, 4, stride=2),
                "conv2": Conv2d(f1, f2, 5, stride=2, padding=2),
                "fc": nn.Linear(f2 * h2 * w2, embedding_dim),
            }
        )
        # output_padding makes each deconvolution give back exactly its encoder layer's size
        pad2 = (h1 - 2 * (h2 - 1) - 1, w1 - 2 * (w2 - 1) - 1)
        pad1 = (h - 2 * (h1 - 1) - 4, w - 2 * (w1 - 1) - 4)
        self.decoder = nn.ModuleDict(
            {
                "fc": nn.Linear(embedding_dim, f2 * h2 * w2),
                "deconv2": ConvTranspose2d(f2, f1, 5, 2, padding=2, output_padding=pad2),
                "deconv1": ConvTranspose2d(f1, c, 4, 2, output_padding=pad1),
            }
        )
        keras_init_(self)

    def features(self, x: torch.Tensor, noisy: bool) -> tuple[torch.Tensor, ...]:
        """(conv1, conv2, embedding) of x, with dropout iff ``noisy``."""
        p0, p1, p2 = self.dropout if noisy else (0.0, 0.0, 0.0)
        e = self.encoder
        h1 = F.leaky_relu(e["conv1"](F.dropout(2 * x - 1, p0, training=noisy)), LEAK)
        h2 = F.leaky_relu(e["conv2"](F.dropout(h1, p1, training=noisy)), LEAK)
        z = torch.tanh(e["fc"](F.dropout(h2, p2, training=noisy).flatten(1)))
        return h1, h2, z

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(dense, deconv2, output) of the decoder; the output is in [-1, 1]."""
        d = self.decoder
        r2 = F.leaky_relu(d["fc"](z), LEAK).view(-1, *self.feature_shape)
        r1 = F.leaky_relu(d["deconv2"](r2), LEAK)
        return r2, r1, torch.tanh(d["deconv1"](r1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding: noisy in training mode, clean in eval mode."""
        return self.features(x, self.training)[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, (self.decode(z)[-1] + 1) / 2

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Noisy pathway's reconstructions against the input and the clean encoder's features."""
        h1, h2, _ = self.features(x, noisy=False)
        r2, r1, r0 = self.decode(self.features(x, noisy=True)[-1])
        return F.mse_loss(r0.float(), 2 * x - 1) + LAYER_WEIGHT * (
            F.mse_loss(r1.float(), h1.float()) + F.mse_loss(r2.float(), h2.float())
        )


register_backbone(
    BackboneSpec(
        "depict-cae",
        "DEPICT's denoising CAE: conv50(4x4)-conv50(5x5)-FC tanh with dropout, layer-wise rec. loss",
        DepictAutoencoder,
        # the code: Adam 1e-4, batch 100 (up to 4000 epochs with early stopping; 300 is ours)
        pretrain={
            "pretrain_epochs": 300,
            "pretrain_optimizer": "adam",
            "pretrain_lr": 0.0001,
            "pretrain_momentum": 0.0,
            "pretrain_batch_size": 100,
        },
    )
)


def head_logits(z: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """Logits of a head stored as (K, d + 1): weights, then the bias."""
    return z @ head[:, :-1].T + head[:, -1]


@register_loss(
    "softmax-kl+rec",
    "DEPICT: softmax head; KL(P || Q of the noisy pathway), P with a cluster-frequency prior; + rec.",
)
class SoftmaxClustering(ClusteringPhase):
    terms = ("ce", "kl", "rec")  # init stage: cross-entropy to the initial labels; main: KL
    params = (
        "optimizer", "lr", "momentum", "batch_size", "gamma", "maxiter",
        "kmeans_n_init", "init", "target",
    )  # fmt: skip

    def predict(self, z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return head_logits(z, centers.to(z.dtype)).argmax(dim=1)

    def noisy_logits(self, model: nn.Module, head: nn.Linear, xb: torch.Tensor) -> torch.Tensor:
        """The noisy pathway (training mode: the backbone's dropout is on), with gradients."""
        model.train()
        with autocast(xb.device, self.est.precision):
            return head(model.encode(xb)).float()

    @torch.no_grad()
    def clean_probs(self, model: nn.Module, head: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """Q of the clean pathway (eval mode), no gradients."""
        z = embed(model, x, precision=self.est.precision)
        return F.softmax(head(z), dim=1)

    def _batches(self, n: int, generator: torch.Generator, device) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=generator).to(device)
        return list(order.split(self.est.batch_size))

    def _epoch(self, model, head, optimizer, x, generator, ite: int, batch_loss, after_step=None):
        """One pass over x in a random order, stopping at ``maxiter``: the steps taken (their
        terms ``rec`` and ``clus`` go to the next log) and the iterations done so far."""
        steps = 0
        for idx in self._batches(x.shape[0], generator, x.device):
            if ite >= self.est.maxiter:
                break
            xb = x[idx]
            logits = self.noisy_logits(model, head, xb)
            with autocast(xb.device, self.est.precision):
                rec = reconstruction_loss(model, xb).float()
            clus = batch_loss(logits, idx)
            self.step(optimizer, rec + self.est.gamma * clus, {"rec": rec, "clus": clus})
            if after_step is not None:
                after_step(idx)
            steps, ite = steps + 1, ite + 1
        return steps, ite

    def run(self, model: nn.Module, x: torch.Tensor, y=None, checkpoint=None) -> PhaseResult:
        """With a ``checkpoint``, resumes from its saved epoch and saves after epochs (at most
        every ``CHECKPOINT_SECONDS``); a resumed run gives the uninterrupted result."""
        est = self.est
        saved = self.start(y, checkpoint)
        generator = torch.Generator().manual_seed(est.seed)
        if saved is None:
            z = embed(model, x, precision=est.precision)
            km = self.initial_clustering(z)
            head = nn.Linear(z.shape[1], est.n_clusters).to(x.device)
            with torch.no_grad():
                c = torch.as_tensor(km.cluster_centers_, dtype=torch.float32, device=x.device)
                head.weight.copy_(c / c.norm(dim=1, keepdim=True))
                head.bias.zero_()
            self.log(0, km.labels_, part="kmeans_init")
            km_labels = km.labels_
        else:
            head = nn.Linear(*saved["head"]["weight"].shape[::-1]).to(x.device)
            self.resume(saved)
            km_labels = saved["km_labels"]
            model.load_state_dict(saved["model"])
            head.load_state_dict(saved["head"])
            generator.set_state(saved["generator"])
            set_rng_state(saved["rng"], x.device)
        stage = (saved or {}).get("stage", "init")
        if stage == "init":
            ite, last = self._init_stage(model, head, x, km_labels, generator, saved)
            saved = None
        else:
            ite, last = saved["iteration"], None
        ite = self._main_stage(model, head, x, generator, ite, last, km_labels, saved)
        labels = self.clean_probs(model, head, x).argmax(dim=1)
        return self.result(labels, torch.cat([head.weight, head.bias[:, None]], dim=1), ite)

    @staticmethod
    def _snapshot(stage, model, head, optimizer, generator, x, km_labels, **rest):
        """What a checkpoint holds (with the history): all the rest of the phase depends on."""
        return {
            "stage": stage, "model": model.state_dict(), "head": head.state_dict(),
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
            "rng": rng_state(x.device), "km_labels": km_labels, **rest,
        }  # fmt: skip

    def _init_stage(self, model, head, x, km_labels, generator, saved):
        """The code's initialization: fit the head (and network) to the k-means labels.
        Returns the iterations done and the last labels logged."""
        est = self.est
        targets = torch.as_tensor(km_labels, dtype=torch.long, device=x.device)
        params = [*model.parameters(), *head.parameters()]
        optimizer = make_optimizer(est.optimizer, params, est.lr, est.momentum)
        if saved is None:
            last = self.clean_probs(model, head, x).argmax(dim=1)
            best, since = nmi_geometric(km_labels, last.cpu().numpy()), 0
            best_state = copy.deepcopy((model.state_dict(), head.state_dict()))
            ite, first_epoch = 0, 0
        else:
            optimizer.load_state_dict(saved["optimizer"])
            last = torch.as_tensor(saved["last"], device=x.device)
            best, since, best_state = saved["best"], saved["since"], saved["best_state"]
            ite, first_epoch = saved["iteration"], saved["epoch"] + 1
        for epoch in range(first_epoch, INIT_MAX_EPOCHS):
            steps, ite = self._epoch(
                model, head, optimizer, x, generator, ite,
                lambda logits, idx: F.cross_entropy(logits, targets[idx]),
            )  # fmt: skip
            if not steps:
                break
            pred = self.clean_probs(model, head, x).argmax(dim=1)
            self.log(ite, pred, changed_from=last, names={"clus": "ce"})
            last = pred
            score = nmi_geometric(km_labels, pred.cpu().numpy())
            if score > best:
                best, since = score, 0
                best_state = copy.deepcopy((model.state_dict(), head.state_dict()))
            else:
                since += 1
            if since > INIT_PATIENCE:
                break
            if self.checkpoint_due():
                self.save(self._snapshot(
                    "init", model, head, optimizer, generator, x, km_labels,
                    iteration=ite, epoch=epoch, last=last.cpu(), best=best, since=since,
                    best_state=best_state,
                ))  # fmt: skip
        model.load_state_dict(best_state[0])  # the weights that agreed best with k-means
        head.load_state_dict(best_state[1])
        return ite, last

    def _main_stage(self, model, head, x, generator, ite, last, km_labels, saved) -> int:
        """Targets with the frequency prior, one per epoch; KL on the noisy pathway + rec.
        The history logs the clean predictions' labels (the model's labels, as for DEC)."""
        est = self.est
        params = [*model.parameters(), *head.parameters()]
        optimizer = make_optimizer(est.optimizer, params, est.lr, est.momentum)
        if saved is None:
            q = self.clean_probs(model, head, x).clone()
            p = make_target(q, est.target, default="depict")
            labels_last = q.argmax(dim=1)  # the init stage's best weights may differ from its last
            self.log(ite, labels_last, changed_from=last)
        else:
            optimizer.load_state_dict(saved["optimizer"])
            q, p = saved["q"].to(x.device), saved["p"].to(x.device)
            labels_last = q.argmax(dim=1)

        def store_q(idx):  # the code's y_prob[idx] update, right after the batch's step
            q[idx] = self.clean_probs(model, head, x[idx])

        while ite < est.maxiter:
            _, ite = self._epoch(
                model, head, optimizer, x, generator, ite,
                lambda logits, idx, p=p: F.kl_div(F.log_softmax(logits, 1), p[idx], reduction="batchmean"),
                after_step=store_q,
            )  # fmt: skip
            p_new = make_target(q, est.target, default="depict")
            labels = q.argmax(dim=1)
            self.log(ite, labels, changed_from=labels_last, names={"clus": "kl"})
            change = (p_new - p).square().mean().item()
            p, labels_last = p_new, labels
            if change < TARGET_TOL:
                break
            if self.checkpoint_due():
                self.save(self._snapshot(
                    "main", model, head, optimizer, generator, x, km_labels,
                    iteration=ite, q=q.cpu(), p=p.cpu(),
                ))  # fmt: skip
        return ite


# herandy/DEPICT: Adam lr 1e-4, batch 100, k-means n_init 40, cluster weight 1, rec. weight 1.
DEPICT = {"optimizer": "adam", "lr": 0.0001, "momentum": 0.0, "batch_size": 100, "gamma": 1.0,
          "kmeans_n_init": 40, "target": "dec"}  # fmt: skip
DIGITS = {**DIGITS_PRETRAIN, "lr": 0.001, "maxiter": 300}  # ours: smoke test
ACPIC = {"init": "ac-pic"}  # the code: AC-PIC for every dataset but MNIST-full (and FRGC, YTF)

# Ghasedi Dizaji et al. (2017): MNIST (all 70,000) ACC 0.965 NMI 0.917; USPS ACC 0.964 NMI 0.927;
# MNIST-test NMI 0.915 (from ../shared/seeds/004; its ACC is not in our sources, so left out).
REFERENCE = {"mnist-full": (96.5, 91.7), "usps": (96.4, 92.7), "mnist-test": (None, 91.5)}

register_method(replace(
    deep_method("depict", "depict-cae", "softmax-kl+rec",
                "DEPICT: denoising CAE + softmax head, KL with a frequency prior + layer-wise rec.",
                params=DEPICT, paper_name="DEPICT",
                dataset_params={"digits": DIGITS, "usps": ACPIC, "mnist-test": ACPIC}),
    reference=REFERENCE, reference_source="Ghasedi Dizaji et al. (ICCV 2017)",
))  # fmt: skip
