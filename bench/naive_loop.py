"""The reference loops bench/speed.py compares against, written the way typical public PyTorch
ports of DEC / IDEC / DCEC are: a shuffled DataLoader over a TensorDataset, a ``.to(device)``
per batch, eager fp32, torch's default Adam, and ``.item()`` after every step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader, TensorDataset


def pretrain(model, x: torch.Tensor, epochs: int, batch_size: int = 256, device="cpu"):
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)
    for _ in range(epochs):
        total = 0.0
        for (xb,) in loader:
            xb = xb.to(device)
            _, rec = model(xb)
            loss = F.mse_loss(rec, xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
    return model


def cluster(model, x, n_clusters, iterations, update_interval=140, batch_size=256, gamma=0.1,
            device="cpu", n_init=1):  # fmt: skip
    """DCEC's clustering phase (KL + reconstruction), k-means init with ``n_init`` restarts."""
    model.to(device)
    full = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=False)

    def embed_all():
        with torch.no_grad():
            return torch.cat([model(xb.to(device))[0] for (xb,) in full])

    km = KMeans(n_clusters, n_init=n_init, random_state=0).fit(embed_all().cpu().numpy())
    centers = torch.nn.Parameter(
        torch.tensor(km.cluster_centers_, dtype=torch.float32, device=device)
    )
    optimizer = torch.optim.Adam([*model.parameters(), centers], lr=1e-3)
    batches = DataLoader(TensorDataset(x, torch.arange(len(x))), batch_size=batch_size)
    step = 0
    while step < iterations:
        for xb, idx in batches:
            if step % update_interval == 0:
                q = _soft_assign(embed_all(), centers.detach())
                p = (q**2 / q.sum(0)) / (q**2 / q.sum(0)).sum(1, keepdim=True)
            xb = xb.to(device)
            z, rec = model(xb)
            q = _soft_assign(z, centers)
            loss = gamma * F.kl_div(q.log(), p[idx], reduction="batchmean") + F.mse_loss(rec, xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
            step += 1
            if step == iterations:
                break
    return model


def _soft_assign(z, centers):
    q = 1.0 / (1.0 + torch.cdist(z, centers) ** 2)
    return q / q.sum(1, keepdim=True)
