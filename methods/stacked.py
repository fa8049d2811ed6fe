"""Seeds trained together: the S seeds of one method as one stacked model (``torch.func``).

On a GPU a training step of these small networks is a few hundred tiny kernels and the device
idles between them; S seeds stacked into one model make every kernel S times larger for the
same launches. Each seed keeps what it has when trained alone: its initial weights (built from
its own seed), data order, optimizer state (Adam and SGD are elementwise, so one optimizer over
stacked parameters is S optimizers), k-means init, target distribution and stopping point (a
seed that meets ``tol`` keeps its labels, centers and weights as of that moment while the
others go on). Stacked pretraining checkpoints each seed in ``pretrain``'s own format, at
most once a minute. Stacked matrix products round differently from single ones (about 1e-7
relative per step in fp32), so a long fit drifts from a separate one as any two BLAS would.

    >>> from dcbench.methods.stacked import fit_stacked
    >>> ests = [DeepClusterer("cae", loss="kl+rec", random_state=s) for s in range(5)]
    >>> outcomes = fit_stacked(ests, images, y)   # each fitted estimator, or its exception

What stacks: the backbones without a loss of their own (``sae``, ``cae``), and the losses
``none``, ``kl`` and ``kl+rec`` (DEC, IDEC, DEC-conv, DCEC and the two-stage rows); other losses
fit one seed at a time on the stacked pretraining (``stackable_loss``). A stacked clustering
phase does not checkpoint: it is meant for a GPU, where it takes minutes.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dcbench.core.errors import TrainingDiverged
from dcbench.methods.backbones import BACKBONES, reconstruction_loss
from dcbench.methods.losses import (
    LOSSES,
    KMeansOnEmbedding,
    StudentTClustering,
    make_target,
    soft_assign,
)
from dcbench.methods.training import (
    PhaseCheckpoint,
    autocast,
    check_finite,
    check_precision,
    make_optimizer,
    seed_everything,
)


class _Encode(nn.Module):
    """``model.encode`` as a module's forward, for ``functional_call``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)


class StackedNetwork:
    """S networks of one architecture as stacked parameters (S, ...) and one stateless copy.

    ``map(fn, x)`` runs ``fn(network, x_s)`` for every seed s at once (``vmap``): ``network``
    behaves like the backbone (``network(x)``, ``network.encode(x)``) with seed s's weights."""

    def __init__(self, models: list[nn.Module]):
        self.params, self.buffers = stack_module_state(models)  # leaves of shape (S, ...)
        self.base = copy.deepcopy(models[0]).to("meta")  # the architecture, no storage
        self.encoder = _Encode(self.base)
        self.size = len(models)

    def parameters(self, prefix: str = "") -> list[torch.Tensor]:
        """The stacked parameters whose names start with ``prefix`` (``encoder.``)."""
        return [v for k, v in self.params.items() if k.startswith(prefix)]

    def state_dict(self, s: int) -> dict[str, torch.Tensor]:
        """Seed ``s``'s weights, as its own network's ``state_dict`` (copies)."""
        return {k: v[s].detach().clone() for k, v in {**self.params, **self.buffers}.items()}

    def map(self, fn, *stacked, shared=()):
        """``fn(network_s, *stacked_s, *shared)`` for every seed s at once: ``stacked`` have a
        leading seed axis, ``shared`` are the same for every seed."""

        def one(params, buffers, *args):
            return fn(_Bound(self, params, buffers), *args)

        dims = (0, 0, *(0,) * len(stacked), *(None,) * len(shared))
        return vmap(one, in_dims=dims)(self.params, self.buffers, *stacked, *shared)

    @torch.inference_mode()
    def embed(self, x: torch.Tensor, precision: str, batch_size: int = 4096) -> torch.Tensor:
        """Every seed's embedding of the whole dataset, (S, N, d), in fp32. One seed at a time
        (S times the launches, but only at target updates): a stacked pass over the whole
        dataset picks other matrix-product blockings, and the k-means init and the targets
        would start from embeddings a few ulps away from a separate run's."""
        with autocast(x.device, precision):
            return torch.stack([
                torch.cat([
                    _Bound(self, *self.seed(s)).encode(x[i : i + batch_size]).float()
                    for i in range(0, x.shape[0], batch_size)
                ])
                for s in range(self.size)
            ])  # fmt: skip

    def seed(self, s: int) -> tuple[dict, dict]:
        """Seed ``s``'s parameters and buffers (views of the stack)."""
        return {k: v[s] for k, v in self.params.items()}, {k: v[s] for k, v in self.buffers.items()}


class _Bound:
    """One seed's network inside ``vmap``: the stateless architecture with its weights."""

    def __init__(self, net: StackedNetwork, params: dict, buffers: dict):
        self.net, self.state = net, {**params, **buffers}

    def __call__(self, x: torch.Tensor):
        return functional_call(self.net.base, self.state, (x,))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        state = {f"model.{k}": v for k, v in self.state.items()}
        return functional_call(self.net.encoder, state, (x,))


def stackable_loss(loss: str) -> bool:
    """Whether a loss's phase runs stacked (else each seed runs alone on its pretraining):
    the k-means-on-embedding phase, and the kl phase with its own ``run`` (``_cluster`` is
    that loop stacked; a subclass may change ``batch_loss``, not the loop)."""
    phase = LOSSES.get(loss)
    if issubclass(phase, StudentTClustering):
        return phase.run is StudentTClustering.run
    return issubclass(phase, KMeansOnEmbedding)


def stackable_backbone(backbone: str) -> bool:
    """Whether a backbone pretrains stacked: one without a pretraining loss of its own
    (DEPICT's layer-wise denoising loss draws dropout noise per seed)."""
    return not hasattr(BACKBONES.get(backbone).build, "reconstruction_loss")


def same_but_seed(estimators) -> bool:
    """Whether the estimators differ in ``random_state`` alone (the condition to stack)."""
    configs = [{k: v for k, v in e.get_params().items() if k != "random_state"} for e in estimators]
    return all(c == configs[0] for c in configs[1:])


def pretrain_stacked(estimators, X, checkpoints=None) -> list[dict[str, Any] | Exception]:
    """``est.pretrain(X)`` for estimators that differ only in their seed, trained together;
    per estimator its state (as ``pretrain`` returns it) or the exception that stopped it
    (a seed whose loss diverges fails alone). ``checkpoints``: one per estimator (as
    ``pretrain`` takes it), saved at most once a minute in ``pretrain``'s own format, so that
    a stacked pretraining resumes from them, and a separate one could too."""
    from dcbench.methods.validation import check_images

    _check_stackable(estimators, phase=False)
    first = estimators[0]
    first._validate_params()
    x = first._network_input(check_images(X))
    return _pretrain(estimators, x, checkpoints)


def _pretrain(estimators, x: torch.Tensor, checkpoints=None) -> list[dict[str, Any] | Exception]:
    first, device = estimators[0], x.device
    check_precision(first.precision, device)
    models, generators = [], []
    for est in estimators:  # in turn, as each would alone: its seed, then its weights
        generators.append(seed_everything(est.seed))
        models.append(est._build(x.shape[1:]).to(device))
    savers = [PhaseCheckpoint(c) for c in (checkpoints or [None] * len(estimators))]
    saved = [saver.load() for saver in savers]
    history: list[list[dict[str, Any]]] = [[] for _ in estimators]
    resume = all(saved) and len({len(state["history"]) for state in saved}) == 1
    if resume:  # every seed saved at the same epoch (else all start over: they train as one)
        for s, state in enumerate(saved):
            models[s].load_state_dict(state["model"])
            generators[s].set_state(state["generator"])
            history[s] = state["history"]
    net = StackedNetwork(models)
    optimizer = make_optimizer(
        first.pretrain_optimizer, net.parameters(), first.pretrain_lr, first.pretrain_momentum
    )
    if resume:
        optimizer.load_state_dict(_stack_optimizer_states([st["optimizer"] for st in saved]))
    outcomes: list[Any] = [None] * net.size
    n, bs = x.shape[0], first.pretrain_batch_size

    for epoch in range(len(history[0]), first.pretrain_epochs):
        started = time.perf_counter()
        order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        total = torch.zeros(net.size, device=device)
        for i in range(0, n, bs):
            xb = x[order[:, i : i + bs]]  # (S, b, C, H, W): each seed's own batch
            with autocast(device, first.precision):
                losses = net.map(reconstruction_loss, xb)  # the MSE: no backbone loss
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # seed s's parameters get seed s's gradient alone
            optimizer.step()
            total += losses.detach() * xb.shape[1]
        means = (total / n).tolist()  # one host sync per epoch
        seconds = time.perf_counter() - started
        for s, mean in enumerate(means):
            if outcomes[s] is not None:
                continue
            try:
                check_finite({"rec": mean}, f"pretraining epoch {epoch + 1}", "pretrain_lr")
            except TrainingDiverged as exc:
                outcomes[s] = exc
                continue
            history[s].append({"epoch": epoch + 1, "rec": mean, "seconds": seconds})
        # at most once a minute and after the last epoch, as alone (DeepClusterer._pretrain)
        last = epoch + 1 == first.pretrain_epochs
        if savers[0].due() or (last and savers[0].checkpoint is not None):
            states = _split_optimizer_state(optimizer.state_dict(), net.size)
            for s, saver in enumerate(savers):
                if outcomes[s] is None:
                    saver.save({"model": net.state_dict(s), "optimizer": states[s],
                                "generator": generators[s].get_state(), "history": history[s],
                                "epochs": first.pretrain_epochs})  # fmt: skip
    return [
        outcome
        or {"model": {k: v.cpu() for k, v in net.state_dict(s).items()}, "history": history[s]}
        for s, outcome in enumerate(outcomes)
    ]


def _split_optimizer_state(state: dict, size: int) -> list[dict]:
    """A stacked optimizer's state as ``size`` single-model states: every per-parameter
    tensor with the seed axis sliced (the parameters are in the single model's order)."""

    def part(value, s):
        return value[s].clone() if torch.is_tensor(value) and value.dim() > 0 else value

    return [
        {"state": {i: {k: part(v, s) for k, v in st.items()} for i, st in state["state"].items()},
         "param_groups": state["param_groups"]}
        for s in range(size)
    ]  # fmt: skip


def _stack_optimizer_states(states: list[dict]) -> dict:
    """Single-model optimizer states stacked into one (the inverse of the split)."""
    first = states[0]
    stacked = {
        i: {k: torch.stack([st["state"][i][k] for st in states])
            if torch.is_tensor(v) and v.dim() > 0 else v for k, v in per.items()}
        for i, per in first["state"].items()
    }  # fmt: skip
    return {"state": stacked, "param_groups": first["param_groups"]}


def fit_stacked(estimators, X, y=None, pretrained=None) -> list[Any]:
    """``est.fit(X, y, pretrained=state)`` for estimators that differ only in their seed, fitted
    together; per estimator the fitted estimator or the exception that stopped its run.
    ``pretrained``: one state per estimator (from ``pretrain`` or ``pretrain_stacked``), or
    None to pretrain them here, stacked."""
    from dcbench.methods.validation import validate_images

    _check_stackable(estimators)
    first = estimators[0]
    first._validate_params()
    X = validate_images(first, X, reset=True)
    x = first._network_input(X)
    clock = time.perf_counter()
    if pretrained is None:
        pretrained = _pretrain(estimators, x)
        pretrain_seconds = (time.perf_counter() - clock) / len(estimators)
    else:
        pretrain_seconds = 0.0
    outcomes: list[Any] = list(pretrained)
    alive = [i for i, state in enumerate(pretrained) if not isinstance(state, Exception)]
    if not alive:
        return outcomes
    models = []
    for i in alive:
        model = estimators[i]._build(x.shape[1:]).to(x.device)
        model.load_state_dict(pretrained[i]["model"])
        models.append(model)
    group = [estimators[i] for i in alive]
    phase_cls = LOSSES.get(first.loss)
    clock = time.perf_counter()
    if issubclass(phase_cls, StudentTClustering):
        fitted = _cluster(group, StackedNetwork(models), x, y)
    else:  # k-means on each seed's embedding: no training to stack
        fitted = [_attempt(lambda e=e, m=m: (phase_cls(e).run(m, x, y), None))
                  for e, m in zip(group, models, strict=True)]  # fmt: skip
    share = (time.perf_counter() - clock) / len(group)  # the phase's wall time, per seed
    for i, est, model, item in zip(alive, group, models, fitted, strict=True):
        if isinstance(item, Exception):
            outcomes[i] = item
            continue
        result, weights = item
        if weights is not None:  # the weights seed i stopped at
            model.load_state_dict(weights)
        est.n_features_in_ = first.n_features_in_
        est._set_fitted(model, result, pretrained[i]["history"], pretrain_seconds, share)
        outcomes[i] = est
    return outcomes


def _attempt(fn):
    try:
        return fn()
    except Exception as exc:  # recorded for its seed; the other seeds go on
        return exc


def _cluster(estimators, net: StackedNetwork, x: torch.Tensor, y) -> list[Any]:
    """The kl / kl+rec phase (``losses.StudentTClustering.run``) for every seed at once.
    Returns per seed its ``PhaseResult`` and the weights it stopped at, or its exception;
    ``net``'s weights are those of the last iteration."""
    first, device = estimators[0], x.device
    phases = [LOSSES.get(e.loss)(e) for e in estimators]
    lead = phases[0]  # what every seed shares: alpha, gamma, the loss
    for phase in phases:
        phase.start(y)
    z = net.embed(x, "fp32")
    inits = [phase.initial_clustering(z[s]) for s, phase in enumerate(phases)]
    as_tensor = lambda v: torch.as_tensor(v, device=device)  # noqa: E731
    centers = nn.Parameter(torch.stack([as_tensor(k.cluster_centers_).float() for k in inits]))
    labels_last = torch.stack([as_tensor(k.labels_) for k in inits])
    trained = [*net.parameters("encoder."), centers]
    if lead.reconstruct:
        trained += net.parameters("decoder.")
    optimizer = make_optimizer(first.optimizer, trained, first.lr, first.momentum)

    def batch_loss(network, c, pb, xb):
        return lead.batch_loss(network, c, xb, pb)

    seeds = range(net.size)
    outcomes: list[Any] = [None] * net.size
    weights: list[dict | None] = [None] * net.size
    sums: dict[str, torch.Tensor] = {}
    steps = 0
    n, bs, start = x.shape[0], first.batch_size, 0
    p = None
    for ite in range(int(first.maxiter)):
        if ite % first.update_interval == 0:
            z = net.embed(x, first.precision)
            # per seed: a reduction over a stacked (S, N, K) tensor adds in another order
            q = torch.stack([soft_assign(z[s], centers[s].detach(), first.alpha) for s in seeds])
            p = torch.stack([make_target(q[s], first.target, default="dec") for s in seeds])
            labels = q.argmax(dim=-1)
            for s, phase in enumerate(phases):
                if outcomes[s] is not None:
                    continue
                phase.lap("steps")
                phase.count({k: v[s] for k, v in sums.items()}, steps)
                try:
                    entry = phase.log(
                        ite, labels[s], changed_from=labels_last[s], part="target_updates"
                    )
                except TrainingDiverged as exc:
                    outcomes[s] = exc
                    continue
                if ite > 0 and entry["delta_label"] < phase.est.tol:  # seed s stops here
                    outcomes[s] = phase.result(labels[s], centers[s].detach().clone(), ite)
                    weights[s] = net.state_dict(s)
            sums, steps, labels_last = {}, 0, labels
            if all(o is not None for o in outcomes):
                break
        stop = min(start + bs, n)
        with autocast(device, first.precision):
            losses, terms = net.map(batch_loss, centers, p[:, start:stop], shared=(x[start:stop],))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0) + v.detach()
        steps += 1
        start = stop if stop < n else 0
    else:
        z = net.embed(x, first.precision)
        for s, phase in enumerate(phases):
            if outcomes[s] is None:
                phase.lap("steps")
                final = phase.predict(z[s], centers[s].detach())
                outcomes[s] = phase.result(final, centers[s].detach().clone(), int(first.maxiter))
                weights[s] = net.state_dict(s)
    for result in outcomes:  # the stack's wall time per part, shared out over its seeds
        if not isinstance(result, Exception):
            result.seconds = {k: v / net.size for k, v in result.seconds.items()}
    return [o if w is None else (o, w) for o, w in zip(outcomes, weights, strict=True)]


def _check_stackable(estimators, phase: bool = True) -> None:
    """Refuse (one line) what does not stack: other settings than the seed, a backbone with
    its own pretraining loss, and (``phase``) a loss whose phase does not stack."""
    if not estimators:
        raise ValueError("fit_stacked needs at least one estimator")
    if not same_but_seed(estimators):
        raise ValueError("stacked estimators must differ in random_state alone")
    first = estimators[0]
    if phase and not stackable_loss(first.loss):
        raise ValueError(f"loss '{first.loss}' does not run stacked; fit each seed alone")
    if not stackable_backbone(first.backbone):
        raise ValueError(f"backbone '{first.backbone}' has its own pretraining loss; not stacked")
