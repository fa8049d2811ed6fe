"""Bad input (issue 8, section 3): every estimator refuses bad data and bad hyperparameters with
a one-line ValueError, passes scikit-learn's estimator checks (the ones that apply), and every
flag of run_all.py refuses nonsense with one line and exit status 2, before any training.

scikit-learn checks listed in EXPECTED_FAILED_CHECKS are run but expected to fail (strict xfail:
one that starts to pass fails this file, so the list stays honest). Each one fails for the
reason written beside it. Not checked at all: DeepClusterer with the convolutional ``cae``
backbone, which needs square images (N, C, H, W) with a side divisible by 4, while every
scikit-learn check passes tabular (N, D) data; the checks run the fully connected ``sae``,
which takes (N, D) as it is (the estimator code is the same for both backbones).
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from dcbench.cli import main
from dcbench.methods import DeepClusterer, PixelKMeans
from dcbench.methods.sec import SEC, KNNSpectral
from dcbench.methods.validation import Names

# Tiny settings: one pretraining epoch and two clustering steps keep each DeepClusterer fit
# near 0.1 s, so scikit-learn's ~80 fits per estimator stay well under 30 s in all.
DEEP_FAST = dict(
    backbone="sae",
    loss="kl+rec",
    pretrain_epochs=1,
    maxiter=2,
    update_interval=1,
    kmeans_n_init=1,
    device="cpu",
)


def make(name, **params):
    """A fast estimator; ``n_neighbors=5`` lets SEC run on scikit-learn's 10-sample checks."""
    if name == "kmeans":
        return PixelKMeans(**{"n_clusters": 3, "n_init": 1, **params})
    if name == "sec":
        return SEC(**{"n_clusters": 3, "n_neighbors": 5, "n_init": 1, **params})
    if name == "spectral":
        return KNNSpectral(**{"n_clusters": 3, "n_neighbors": 5, "n_init": 1, **params})
    return DeepClusterer(**{"n_clusters": 3, **DEEP_FAST, **params})


NAMES = ["kmeans", "sec", "spectral", "deep"]
CLASS = {"kmeans": "PixelKMeans", "sec": "SEC", "spectral": "KNNSpectral", "deep": "DeepClusterer"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def images(n=30, shape=(1, 4, 4), seed=0):
    """Three well separated groups of tiny images, float32."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, size=(3, int(np.prod(shape))))
    x = centers[np.arange(n) % 3] + 0.05 * rng.standard_normal((n, centers.shape[1]))
    return x.reshape(n, *shape).astype(np.float32)


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message.strip(), f"not one line: {message!r}"
    return message


# -- data ---------------------------------------------------------------------------------------


def _with(index, value):
    x = images()
    x[index] = value
    return x


BAD_DATA = {
    "1-D": (np.zeros(30), r"X must have shape \(N, D\), \(N, H, W\) or \(N, C, H, W\); got"),
    "5-D": (np.zeros((30, 1, 1, 4, 4)), r"got shape \(30, 1, 1, 4, 4\)"),
    "strings": (np.full((30, 16), "a", dtype=object), "X must be numeric; .*'a'"),
    "str dtype": (np.full((30, 16), "0.5"), r"X must be numeric \(bool, int or float\); got"),
    "complex": (images() + 1j, "Complex data not supported: X has dtype complex64"),
    "sparse": (sp.random(30, 16, density=0.5, format="csr"), "X is a sparse matrix"),
    "NaN": (_with((3, 0, 1, 1), np.nan), "X contains NaN"),
    "inf": (_with((5, 0, 2, 2), np.inf), "X contains infinity"),
    "no samples": (np.zeros((0, 16)), r"0 sample\(s\) \(shape=\(0, 16\)\)"),
    "no features": (np.zeros((30, 0)), r"0 feature\(s\) \(shape=\(30, 0\)\)"),
    "no pixels": (np.zeros((30, 1, 0, 4)), r"samples of shape \(1, 0, 4\), with no pixels"),
    "fewer samples than clusters": (images(n=2), "X has 2 samples, fewer than n_clusters=3"),
    "constant": (np.ones((30, 1, 4, 4)), "X is constant: all 30 samples are identical"),
}


@pytest.mark.parametrize("case", BAD_DATA)
@pytest.mark.parametrize("name", NAMES)
def test_fit_refuses_bad_data_with_one_line(name, case):
    X, message = BAD_DATA[case]
    with pytest.raises(ValueError, match=message) as exc_info:
        make(name).fit(X)
    one_line(exc_info)


def test_numbers_stored_as_objects_and_lists_are_accepted():
    x = images()
    labels = make("kmeans", random_state=0).fit(x).labels_
    assert (make("kmeans", random_state=0).fit(x.astype(object)).labels_ == labels).all()
    assert (make("kmeans", random_state=0).fit(x.reshape(30, -1).tolist()).labels_ == labels).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_clusters", [1, 0, -3, 2.5, "3", None])
def test_n_clusters_below_two_or_not_an_int_is_refused(name, n_clusters):
    with pytest.raises(ValueError) as exc_info:
        make(name, n_clusters=n_clusters).fit(images())
    expected = (
        f"The 'n_clusters' parameter of {CLASS[name]} must be an int in the range [2, inf). "
        f"Got {n_clusters!r} instead."
    )
    assert one_line(exc_info) == expected


def test_spectral_methods_need_more_samples_than_clusters():
    with pytest.raises(ValueError, match="n_clusters=3 must be smaller than n_samples=3"):
        make("sec", n_neighbors=1).fit(images(n=3))


def test_labels_of_another_length_are_refused():
    x = images()
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[30, 29\]"):
        make("deep").fit(x, np.zeros(29, dtype=int))


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    return {name: make(name, random_state=0).fit(images()) for name in ("kmeans", "sec", "deep")}


BAD_NEW_DATA = {
    "other feature count": (
        images(shape=(1, 3, 5)),
        r"X has 15 features, but \w+ is expecting 16 features as input",
    ),
    "NaN": (_with((0, 0, 0, 0), np.nan), "X contains NaN"),
    "1-D": (np.zeros(16), r"X must have shape .*; got shape \(16,\)"),
    "no samples": (np.zeros((0, 16)), r"0 sample\(s\)"),
}


@pytest.mark.parametrize("case", BAD_NEW_DATA)
@pytest.mark.parametrize("method", ["predict", "transform"])
@pytest.mark.parametrize("name", ["kmeans", "sec", "deep"])
def test_predict_and_transform_refuse_bad_data(fitted, name, method, case):
    X, message = BAD_NEW_DATA[case]
    with pytest.raises(ValueError, match=message) as exc_info:
        getattr(fitted[name], method)(X)
    one_line(exc_info)


def test_deep_refuses_the_same_pixels_in_another_image_shape(fitted):
    est = fitted["deep"]
    assert est.n_features_in_ == 16
    assert est.transform(images()[:, 0]).shape == (30, 10)  # (N, H, W) is (N, 1, H, W)
    with pytest.raises(ValueError, match=r"shape \(1, 1, 16\) .* fitted on .* \(1, 4, 4\)"):
        est.predict(images().reshape(30, 16))


# -- hyperparameters ----------------------------------------------------------------------------

BAD_PARAMS = {
    "deep": [
        ("lr", -1), ("lr", 0), ("pretrain_lr", 0.0), ("batch_size", 0), ("batch_size", "abc"),
        ("batch_size", 2.5), ("pretrain_batch_size", 0), ("backbone", "vit"), ("loss", "mse"),
        ("optimizer", "rmsprop"), ("pretrain_optimizer", "Adam"), ("tol", 1.5), ("tol", -0.1),
        ("maxiter", 0), ("update_interval", 0), ("gamma", -1), ("alpha", 0), ("momentum", 1.0),
        ("pretrain_momentum", -0.1), ("embedding_dim", 0), ("pretrain_epochs", -1),
        ("kmeans_n_init", 0), ("precision", "fp16"), ("device", "tpu"), ("device", "cuda:x"),
        ("random_state", -1),
    ],
    "kmeans": [("n_init", 0), ("n_init", "best"), ("max_iter", 0), ("random_state", "0")],
    "sec": [
        ("mu", -1.0), ("gamma", 0.0), ("n_neighbors", 0), ("n_neighbors", 2.5),
        ("affinity", "rbf"), ("eigen_solver", "dense"), ("eigen_tol", 0), ("pca_components", 0),
        ("normalize_rows", "yes"), ("n_init", 0),
    ],
    "spectral": [("n_neighbors", 0), ("affinity", "rbf"), ("eigen_solver", "dense")],
}  # fmt: skip


@pytest.mark.parametrize(
    "name, param, value", [(n, p, v) for n, cases in BAD_PARAMS.items() for p, v in cases]
)
def test_bad_hyperparameters_are_refused_at_fit_with_one_line(name, param, value):
    with pytest.raises(ValueError) as exc_info:
        make(name, **{param: value}).fit(images())
    message = one_line(exc_info)
    pattern = rf"The '{param}' parameter of {CLASS[name]} must be .+\. Got {re.escape(repr(value))} instead\."
    assert re.fullmatch(pattern, message), message


@pytest.mark.parametrize("param, value", [("pretrain_lr", -1), ("backbone", "vit")])
def test_pretrain_alone_checks_hyperparameters_too(param, value):
    with pytest.raises(ValueError, match=f"The '{param}' parameter of DeepClusterer"):
        make("deep", **{param: value}).pretrain(images())


def test_messages_list_what_is_allowed_in_order():
    with pytest.raises(ValueError) as exc_info:
        make("deep", backbone="vit").fit(images())
    assert "must be a str among {'sae', 'cae'" in one_line(exc_info)
    with pytest.raises(ValueError) as exc_info:
        make("deep", device="tpu").fit(images())
    assert "{'auto', 'cpu', 'cuda', 'cuda:N'} or an instance of 'torch.device'" in str(
        exc_info.value
    )


def test_good_values_at_the_edges_are_accepted():
    for params in (
        dict(device="cuda:1", tol=0.0, gamma=0, pretrain_epochs=0, momentum=0.99),
        dict(device=torch.device("cpu"), tol=1, random_state=np.random.RandomState(0)),
    ):
        make("deep", **params)._validate_params()
    make("kmeans", n_init="auto")._validate_params()
    make("sec", mu=0, pca_components=None)._validate_params()


def test_names_read_a_registry_when_checked():
    names = ["a"]
    constraint = Names(names)
    names.append("b")  # registered after the constraint was made
    assert constraint.is_satisfied_by("b") and not constraint.is_satisfied_by("c")
    assert str(constraint) == "a str among {'a', 'b'}"


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_has_a_constraint_sklearn_check(name):
    """scikit-learn's own test of _parameter_constraints: one per parameter, each enforced."""
    check_param_validation(CLASS[name], make(name))


# -- scikit-learn's estimator checks ------------------------------------------------------------

N_CLUSTERS_1 = "sets n_clusters=1, which we refuse: n_clusters must be >= 2 (issue 8)"
EXPECTED_FAILED_CHECKS = {
    "check_fit2d_1sample": N_CLUSTERS_1 + "; also 1 sample < 2 clusters",
    "check_fit2d_1feature": N_CLUSTERS_1,
    "check_fit2d_predict1d": N_CLUSTERS_1 + "; 1-D input to predict is tested above",
    "check_dont_overwrite_parameters": N_CLUSTERS_1,
    "check_methods_subset_invariance": N_CLUSTERS_1,
}


@pytest.mark.filterwarnings("ignore:The problem size")  # lobpcg on scikit-learn's 10 samples
@parametrize_with_checks(
    [make(name) for name in NAMES],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- the command line ---------------------------------------------------------------------------


def run_cli(capsys, tmp_path, *args):
    out = tmp_path / "out"
    try:
        code = main(["--no-progress", "--no-figures", "--out", str(out), *args])
    except SystemExit as exc:  # argparse's own errors (a flag's type)
        code = exc.code
    err = capsys.readouterr().err
    return code, err, out


DEEP_SET = "--set '{}': method 'dec': The '{}' parameter of DeepClusterer must be "
CLI_CASES = {
    # --set: type and range through the estimator's own constraints, at plan time
    "lr<0": (["--set", "lr=-1"], DEEP_SET.format("lr=-1", "lr") + "a float in the range (0.0, inf). Got -1 instead."),
    "lr empty": (["--set", "lr="], DEEP_SET.format("lr=", "lr") + "a float in the range (0.0, inf). Got '' instead."),
    "batch_size str": (["--set", "batch_size=abc"], DEEP_SET.format("batch_size=abc", "batch_size") + "an int in the range [1, inf). Got 'abc' instead."),
    "batch_size 0": (["--set", "batch_size=0"], "an int in the range [1, inf). Got 0 instead."),
    "tol>1": (["--set", "dcec.tol=2", "--methods", "dcec"], "method 'dcec': The 'tol' parameter of DeepClusterer must be a float in the range [0.0, 1.0]. Got 2 instead."),
    "maxiter 0": (["--set", "maxiter=0"], "'maxiter' parameter of DeepClusterer must be an int in the range [1, inf). Got 0"),
    "update_interval 0": (["--set", "update_interval=0"], "'update_interval' parameter of DeepClusterer must be an int in the range [1, inf)"),
    "gamma<0": (["--set", "gamma=-0.1", "--methods", "idec"], "method 'idec': The 'gamma' parameter of DeepClusterer must be a float in the range [0.0, inf). Got -0.1"),
    "optimizer": (["--set", "optimizer=rmsprop"], "'optimizer' parameter of DeepClusterer must be a str among {'adam', 'sgd'}. Got 'rmsprop'"),
    "init": (["--set", "init=spectral"], "'init' parameter of DeepClusterer must be a str among {'kmeans', 'ac-pic'}. Got 'spectral'"),
    "backbone": (["--set", "backbone=vit"], "'backbone' parameter of DeepClusterer must be a str among {'sae', 'cae'"),
    "n_clusters 1": (["--set", "n_clusters=1", "--methods", "kmeans"], "--set 'n_clusters=1': method 'kmeans': The 'n_clusters' parameter of PixelKMeans must be an int in the range [2, inf). Got 1 instead."),
    "kmeans n_init": (["--set", "kmeans.n_init=0", "--methods", "kmeans"], "'n_init' parameter of PixelKMeans must be an int in the range [1, inf) or a str among {'auto'}. Got 0"),
    "sec mu": (["--set", "mu=-1", "--methods", "sec"], "method 'sec': The 'mu' parameter of SEC must be a float in the range [0.0, inf). Got -1"),
    "spectral k": (["--set", "n_neighbors=0", "--methods", "spectral"], "method 'spectral': The 'n_neighbors' parameter of KNNSpectral must be an int in the range [1, inf)"),
    "unknown key": (["--set", "kmeans.lr=1", "--methods", "kmeans"], "--set 'kmeans.lr=1': method 'kmeans' has no parameter 'lr'"),
    # the other flags
    "methods": (["--methods", "kmeans,nope"], "unknown method 'nope'"),
    "methods empty": (["--methods", ","], "no method given"),
    "datasets": (["--datasets", "mnist"], "unknown dataset 'mnist'"),
    "seeds 0": (["--seeds", "0"], "--seeds 0: the number of seeds must be between 1 and 1000"),
    "seeds big": (["--seeds", "1001"], "between 1 and 1000"),
    "seeds negative": (["--seeds", "3,-1"], "seeds must be distinct integers in 0..2**32-1"),
    "seeds too big": (["--seeds", f"{2**32},"], "seeds must be distinct integers in 0..2**32-1"),
    "data-dir": (["--data-dir", "/no/such/dir"], "'/no/such/dir' is not a readable directory"),
    "device": (["--device", "tpu"], "unknown device 'tpu'; choose from: auto, cpu, cuda"),
    "nmi": (["--nmi", "max"], "--nmi 'max' is not allowed; choose from: geometric, arithmetic"),
    "tsne unknown": (["--tsne", "nope"], "unknown method 'nope'"),
    "tsne not deep": (["--tsne", "dcec,kmeans"], "--tsne kmeans: no embedding to show; choose deep methods: sae-kmeans, dec"),
    "tsne-samples small": (["--tsne-samples", "5"], "--tsne-samples 5: must be between 10 and 100000"),
    "tsne-samples big": (["--tsne-samples", "100001"], "must be between 10 and 100000"),
    "tsne-samples str": (["--tsne-samples", "many"], "argument --tsne-samples: invalid int value: 'many'"),
    "jobs 0": (["--jobs", "0"], "--jobs 0: must be between 1 and 256"),
    "threads 0": (["--threads", "0"], "--threads 0: must be between 1 and 256"),
    "executor": (["--executor", "slurm"], "--executor 'slurm' is not allowed; choose from: local, ray"),
    "jobs with ray": (["--executor", "ray", "--jobs", "2"], "--jobs is for --executor local"),
    "ray flags without ray": (["--ray-address", "auto"], "--ray-address and --ray-shared-dir need --executor ray"),
}  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refuses_nonsense_with_one_line_and_exit_2(capsys, tmp_path, case):
    args, message = CLI_CASES[case]
    code, err, out = run_cli(capsys, tmp_path, *args)
    assert code == 2, err
    assert message in err, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert not out.exists()  # refused before anything was written (or trained)


def test_cli_out_that_is_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code = main(["--out", str(tmp_path / "file"), "--methods", "kmeans"])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and err.strip().count("\n") == 0
