"""``DeepClusterer``: any backbone x any clustering loss, as a scikit-learn style estimator.

    >>> from dcbench.methods import DeepClusterer
    >>> est = DeepClusterer(backbone="cae", loss="kl+rec", pretrain_epochs=200, random_state=0)
    >>> labels = est.fit_predict(images)          # images: float32 (N, C, H, W)
    >>> z = est.transform(images)                 # embeddings (N, 10)

``fit`` pretrains the autoencoder (or takes a pretrained state), then runs the loss's
clustering phase. ``y`` is never used for training: if given, it only adds ACC/NMI to
``history_`` at each target update.
"""

from __future__ import annotations

import inspect
import time
from numbers import Integral, Real
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from dcbench.methods.backbones import BACKBONES, reconstruction_loss
from dcbench.methods.losses import LOSSES, TARGETS, loss_hyperparameters
from dcbench.methods.phase import INITS
from dcbench.methods.training import (
    OPTIMIZERS,
    PRECISIONS,
    PhaseCheckpoint,
    as_image_tensor,
    autocast,
    check_finite,
    check_precision,
    embed,
    make_optimizer,
    resolve_device,
    seed_everything,
)
from dcbench.methods.validation import DeviceNames, Names, check_images, validate_images

PRETRAIN_PARAMS = (
    "backbone", "embedding_dim", "input_scale", "pretrain_epochs", "pretrain_optimizer",
    "pretrain_lr", "pretrain_momentum", "pretrain_batch_size", "precision",
)  # fmt: skip


class Checkpoint(Protocol):
    """Where pretraining (after each epoch) and the clustering phase (as it goes) save their
    progress; the executor provides a file."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


def _at_least(low, kind=Integral, closed="left"):
    return [Interval(kind, low, None, closed=closed)]


class DeepClusterer(ClusterMixin, TransformerMixin, BaseEstimator):
    """Deep clustering: an autoencoder ``backbone`` pretrained on reconstruction, then the
    clustering phase of a ``loss``.

    Parameters
    ----------
    backbone : str, default "cae"
        A registered backbone: ``"sae"`` (d-500-500-2000-10), ``"cae"`` (conv32-64-128-FC10),
        ``"depict-cae"`` (``--list`` shows all).
    loss : str, default "kl+rec"
        The clustering phase: ``"none"`` (k-means on the embedding), ``"kl"`` (DEC),
        ``"kl+rec"`` (IDEC / DCEC), ``"kmeans+rec"`` (DCN), ``"softmax-kl+rec"`` (DEPICT).
    n_clusters : int, default 10
    embedding_dim : int, default 10
    input_scale : float, default 1.0
        The images the network sees are ``X * input_scale``, in pretraining, the clustering
        phase (and so its reconstruction term), ``predict`` and ``transform`` alike. The
        protocol's SAE rows use 2 on USPS and 255 / 50 on MNIST (the authors' inputs).
    pretrain_epochs, pretrain_optimizer ({"adam", "sgd"}), pretrain_lr, pretrain_momentum, \
pretrain_batch_size
        Pretraining on the backbone's reconstruction loss (MSE unless the backbone has its own);
        ``pretrain_epochs=0`` keeps the random initialization.
    optimizer ({"adam", "sgd"}), lr, momentum, batch_size, maxiter
        The clustering phase's optimizer and schedule: read by ``kl``, ``kl+rec``,
        ``kmeans+rec`` and ``softmax-kl+rec``.
    gamma : float, default 0.1
        Weight of the clustering term against the reconstruction: ``kl+rec`` minimizes
        gamma * KL + MSE; ``kmeans+rec`` and ``softmax-kl+rec`` weight their own terms by it.
    update_interval : int, default 140
        Iterations between target updates (``kl``, ``kl+rec``; ``kmeans+rec``: between its
        k-means refreshes).
    kmeans_n_init : int, default 20
        k-means restarts of the initial clustering (every loss).
    init : {"kmeans", "ac-pic"}, default "kmeans"
        The initial clustering of the phase (every loss).
    target : {"auto", "dec", "depict"}, default "auto"
        The target distribution (``kl``, ``kl+rec``, ``softmax-kl+rec``); ``auto``: the loss's own.
    precision : {"auto", "fp32", "bf16"}, default "auto"
        bf16 autocast for the forward passes, or fp32. ``auto``: the runner resolves it per
        method and device (bf16 only for a method whose bf16 results were shown to match fp32,
        on a device with native bf16; no method is proven yet, so fp32 everywhere today); an
        estimator used directly treats ``auto`` as fp32. Explicit bf16 on a CPU without native
        bf16 warns once (it is 7-8x slower there).
    device : "auto", "cpu", "cuda" or torch.device, default "auto"
    random_state : int, RandomState or None
        Seeds weight initialization, data order, k-means and dropout.
    **loss_params
        Each loss's own hyperparameters (``LOSSES.get(name).hyperparameters``: default,
        constraints, doc; ``--list`` shows them), e.g. ``alpha`` (default 1.0, degrees of
        freedom of the Student's t assignment) and ``tol`` (default 0.001, stop when fewer
        than this fraction of labels changed between two target updates) of ``kl`` and
        ``kl+rec``. They are parameters like the others: ``get_params``, ``set_params``,
        ``clone`` and ``--set`` know them.

    Attributes
    ----------
    labels_ : ndarray (n_samples,)
    cluster_centers_ : ndarray (n_clusters, embedding_dim)
    autoencoder_ : torch.nn.Module, the fitted network (``transform`` embeds with it)
    history_ : dict, ``pretrain`` (per epoch) and ``clustering`` (per target update) entries
    seconds_ : dict, wall time per part of ``fit``
    n_iter_ : int, clustering iterations run
    n_features_in_ : int, pixels per sample

    ``LOSSES.get(loss).reads()`` lists exactly the parameters a loss reads; a method's config
    holds only those (``--list``, the records).
    """

    # checked at the start of fit and pretrain, and when a run is planned (methods registry);
    # every registered loss adds its own hyperparameters' (``_add_loss_hyperparameters``)
    _parameter_constraints = {
        "backbone": [Names(BACKBONES)],
        "loss": [Names(LOSSES)],
        "n_clusters": _at_least(2),
        "embedding_dim": _at_least(1),
        "input_scale": _at_least(0, Real, "neither"),
        "pretrain_epochs": _at_least(0),  # 0: the randomly initialized autoencoder
        "pretrain_optimizer": [Names(OPTIMIZERS)],
        "pretrain_lr": _at_least(0, Real, "neither"),
        "pretrain_momentum": [Interval(Real, 0, 1, closed="left")],
        "pretrain_batch_size": _at_least(1),
        "optimizer": [Names(OPTIMIZERS)],
        "lr": _at_least(0, Real, "neither"),
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "batch_size": _at_least(1),
        "gamma": _at_least(0, Real),
        "update_interval": _at_least(1),
        "maxiter": _at_least(1),
        "kmeans_n_init": _at_least(1),
        "init": [Names(INITS)],
        "target": [Names(TARGETS)],
        "precision": [Names(PRECISIONS)],
        "device": [DeviceNames(), torch.device],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        backbone="cae",
        *,
        loss="kl+rec",
        n_clusters=10,
        embedding_dim=10,
        input_scale=1.0,
        pretrain_epochs=200,
        pretrain_optimizer="adam",
        pretrain_lr=0.001,
        pretrain_momentum=0.0,
        pretrain_batch_size=256,
        optimizer="adam",
        lr=0.001,
        momentum=0.0,
        batch_size=256,
        gamma=0.1,
        update_interval=140,
        maxiter=20000,
        kmeans_n_init=20,
        init="kmeans",
        target="auto",
        precision="auto",
        device="auto",
        random_state=None,
        **loss_params,
    ):
        self.backbone = backbone
        self.loss = loss
        self.n_clusters = n_clusters
        self.embedding_dim = embedding_dim
        self.input_scale = input_scale
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_optimizer = pretrain_optimizer
        self.pretrain_lr = pretrain_lr
        self.pretrain_momentum = pretrain_momentum
        self.pretrain_batch_size = pretrain_batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.gamma = gamma
        self.update_interval = update_interval
        self.maxiter = maxiter
        self.kmeans_n_init = kmeans_n_init
        self.init = init
        self.target = target
        self.precision = precision
        self.device = device
        self.random_state = random_state
        declared = loss_hyperparameters()
        for name in loss_params:
            if name not in declared:
                raise TypeError(
                    f"DeepClusterer got an unexpected keyword argument '{name}'; the losses' "
                    f"own hyperparameters are: {', '.join(sorted(declared))}"
                )
        for name, hp in declared.items():
            setattr(self, name, loss_params.get(name, hp.default))

    # -- pretraining -------------------------------------------------------------------------

    def pretrain_config(self) -> dict[str, Any]:
        """The parameters that determine the pretrained autoencoder (with the seed and data)."""
        return {k: getattr(self, k) for k in PRETRAIN_PARAMS}

    def pretrain(self, X, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
        """Pretrain the autoencoder on its reconstruction loss (MSE unless the backbone defines
        its own); returns a state usable by ``fit``.

        With a ``checkpoint``, resumes from its last saved epoch and saves after an epoch at
        most once a minute (``training.CHECKPOINT_SECONDS``) and after the last one.
        """
        self._validate_params()
        return self._pretrain(self._network_input(check_images(X)), checkpoint)

    def _pretrain(self, x: torch.Tensor, checkpoint: Checkpoint | None) -> dict[str, Any]:
        """``pretrain`` on checked images already on the device."""
        device = x.device
        check_precision(self.precision, device)
        generator = seed_everything(self.seed)
        model = self._build(x.shape[1:]).to(device)
        optimizer = make_optimizer(
            self.pretrain_optimizer, model.parameters(), self.pretrain_lr, self.pretrain_momentum
        )
        history: list[dict[str, Any]] = []
        saver = PhaseCheckpoint(checkpoint)
        saved = saver.load()
        if saved:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            history = saved["history"]
        n, bs = x.shape[0], self.pretrain_batch_size
        model.train()
        for epoch in range(len(history), self.pretrain_epochs):
            started = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(
                device
            )  # Keras fit shuffles each epoch
            total = torch.zeros((), device=device)
            for i in range(0, n, bs):
                xb = x[order[i : i + bs]]
                with autocast(device, self.precision):
                    loss = reconstruction_loss(model, xb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * xb.shape[0]
            mean_loss = (total / n).item()  # one host sync per epoch
            check_finite({"rec": mean_loss}, f"pretraining epoch {epoch + 1}", "pretrain_lr")
            history.append(
                {"epoch": epoch + 1, "rec": mean_loss, "seconds": time.perf_counter() - started}
            )
            # at most once a minute (an SAE state is 26 MB, hashed and synced): a kill loses
            # under a minute; and after the last epoch, since the state reaches the cache only
            # with its whole unit: a unit resumed after its runs finished then trains nothing
            last = epoch + 1 == self.pretrain_epochs
            if saver.due() or (last and saver.checkpoint is not None):
                saver.save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "generator": generator.get_state(), "history": history,
                     "epochs": self.pretrain_epochs}  # of how many: for progress reports
                )  # fmt: skip
        return {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": history,
        }

    # -- fitting ---------------------------------------------------------------------------------

    def fit(
        self,
        X,
        y=None,
        pretrained: dict[str, Any] | None = None,
        checkpoint: Checkpoint | None = None,
    ):
        """Pretrain (unless ``pretrained`` is given, from ``pretrain``), then cluster.

        ``y`` is used only to log ACC/NMI in ``history_``, never for training. With a
        ``checkpoint``, the clustering phase resumes from it and saves its progress there
        (phases that support it: DEC / IDEC / DCEC's and DEPICT's).
        """
        self._validate_params()
        X = validate_images(self, X, reset=True)
        phase_cls = LOSSES.get(self.loss)
        x = self._network_input(X)
        check_precision(self.precision, x.device)
        if y is not None:
            y = column_or_1d(y)
            check_consistent_length(X, y)
        clock = time.perf_counter()
        pretrained_here = pretrained is None
        pretrained = pretrained or self._pretrain(x, checkpoint=None)
        pretrain_seconds = time.perf_counter() - clock if pretrained_here else 0.0
        seed_everything(self.seed)
        model = self._build(x.shape[1:]).to(x.device)
        model.load_state_dict(pretrained["model"])
        clock = time.perf_counter()
        result = phase_cls(self).run(model, x, y, checkpoint=checkpoint)
        clustering_seconds = time.perf_counter() - clock
        return self._set_fitted(
            model, result, pretrained["history"], pretrain_seconds, clustering_seconds
        )

    def _set_fitted(
        self, model, result, pretrain_history, pretrain_seconds: float, clustering_seconds: float
    ) -> DeepClusterer:
        """The fitted attributes from a clustering phase's result (``fit``, ``fit_stacked``)."""
        self.autoencoder_ = model
        self.labels_ = np.asarray(result.labels)
        self.cluster_centers_ = np.asarray(result.centers)
        self.n_iter_ = result.n_iter
        self.history_ = {"pretrain": pretrain_history, "clustering": result.history}
        # where the time went: pretraining (0 when a pretrained state was given), and the
        # clustering phase split into the parts the phase timed (k-means init, target updates,
        # steps, evaluation) plus whatever it did not split out
        parts = {k: v for k, v in result.seconds.items() if v}
        self.seconds_ = {"pretrain": pretrain_seconds, **parts}
        self.seconds_["clustering_other"] = max(0.0, clustering_seconds - sum(parts.values()))
        return self

    def transform(self, X) -> np.ndarray:
        """Embeddings of new data, (N, embedding_dim)."""
        check_is_fitted(self, "autoencoder_")
        device = next(self.autoencoder_.parameters()).device
        x = self._network_input(validate_images(self, X, reset=False), device)
        fitted = getattr(self.autoencoder_, "input_shape", None)
        if fitted is not None and tuple(x.shape[1:]) != tuple(fitted):  # same pixels, other shape
            raise ValueError(
                f"X has samples of shape {tuple(x.shape[1:])} (as (C, H, W)), but "
                f"{type(self).__name__} was fitted on samples of shape {tuple(fitted)}"
            )
        return embed(self.autoencoder_, x, precision=self.precision).cpu().numpy()

    def restore(self, fitted: dict[str, Any], input_shape) -> DeepClusterer:
        """This estimator, fitted, from a saved state (``model``, ``labels``,
        ``cluster_centers``: the model file the executor writes beside each record), without
        training; ``input_shape`` is one sample's (C, H, W). For reports: ``transform`` and
        ``predict`` then work as after ``fit``."""
        model = self._build(tuple(input_shape))
        model.load_state_dict(fitted["model"])
        self.autoencoder_ = model.to(resolve_device(self.device))
        self.labels_ = np.asarray(fitted["labels"])
        self.cluster_centers_ = np.asarray(fitted["cluster_centers"])
        self.n_features_in_ = int(np.prod(input_shape))
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "autoencoder_")
        z = torch.from_numpy(self.transform(X))
        return (
            LOSSES.get(self.loss)(self).predict(z, torch.from_numpy(self.cluster_centers_)).numpy()
        )

    # -- helpers -------------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """An int seed from ``random_state`` (None or a RandomState: drawn once, then kept)."""
        if isinstance(self.random_state, int | np.integer):
            return int(self.random_state)
        if not hasattr(self, "_drawn_seed"):
            rng = (
                self.random_state
                if isinstance(self.random_state, np.random.RandomState)
                else np.random
            )
            self._drawn_seed = int(rng.randint(2**31 - 1))
        return self._drawn_seed

    def _network_input(self, X: np.ndarray, device=None) -> torch.Tensor:
        """Checked images as the network sees them: on the device, times ``input_scale``. The
        one place the scale is applied, so pretraining, the clustering phase (whose
        reconstruction term then compares scaled images), predict and transform agree."""
        x = as_image_tensor(X, device or resolve_device(self.device))
        return x if self.input_scale == 1 else x * self.input_scale

    def _build(self, input_shape) -> torch.nn.Module:
        return BACKBONES.get(self.backbone).build(tuple(input_shape), self.embedding_dim)


_SIGNATURE = inspect.signature(DeepClusterer.__init__)


def _add_loss_hyperparameters(name: str = "", phase=None) -> None:
    """Make every registered loss's own hyperparameters parameters of ``DeepClusterer``:
    keyword-only in its signature, with their defaults (scikit-learn's ``get_params``,
    ``clone``, ``repr`` and estimator checks read the signature), and their constraints."""
    declared = loss_hyperparameters()
    shared = [p for p in _SIGNATURE.parameters.values() if p.kind is not p.VAR_KEYWORD]
    clash = sorted(set(declared) & {p.name for p in shared})
    if clash:
        raise ValueError(f"loss '{name}': hyperparameter {clash[0]!r} is a shared parameter")
    own = [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=hp.default)
        for k, hp in declared.items()
    ]
    DeepClusterer.__init__.__signature__ = _SIGNATURE.replace(parameters=[*shared, *own])
    DeepClusterer._parameter_constraints.update({k: hp.constraints for k, hp in declared.items()})


_add_loss_hyperparameters()
LOSSES.subscribe(_add_loss_hyperparameters)
