"""fastnet.sklearn: scikit-learn's estimator checks, parity with scikit-learn's own
MLP (same initial weights and loss definitions: L-BFGS lands on the same
weights), scikit-learn's tools (pipelines, searches, calibration, permutation
importance, DataFrames), partial_fit / warm_start / early stopping / schedules,
the extras, pickling and bad input."""
import copy
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits, make_classification, make_multilabel_classification  # noqa: E402,E501
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnet  # noqa: E402
from fastnet.sklearn import MLPClassifier, MLPRegressor, OneVsRest, Perceptron  # noqa: E402

from conftest import BACKENDS  # noqa: E402

SEED = 0


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X, (y - y.mean()) / y.std()


# ----------------------------------------------------------- scikit-learn's checks
@parametrize_with_checks([est(backend=b) for b in BACKENDS for est in (MLPClassifier, MLPRegressor)]
                         + [Perceptron(), OneVsRest(Perceptron())])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ----------------------------------------------- parity with scikit-learn's MLP
@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_lands_on_scikit_learns_weights(backend, digits):
    """Same initial weights (drawn from random_state as scikit-learn draws them),
    same loss (log-loss + alpha/2 ||W||^2 / n), scipy's L-BFGS: the same result."""
    X, y = digits
    X, y = X[:200], y[:200]
    kw = dict(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=15, alpha=1e-3, random_state=SEED)
    sw = np.random.RandomState(1).randint(1, 4, size=X.shape[0]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(backend=backend, **kw).fit(X, y, sample_weight=sw)
        ref = SkMLPClassifier(**kw).fit(X, y, sample_weight=sw)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_regressor_matches_scikit_learn(backend, diabetes):
    X, y = diabetes
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, activation="tanh", random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPRegressor(backend=backend, **kw).fit(X, y)
        ref = SkMLPRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_poisson_matches_scikit_learn(backend, diabetes):
    X, y = diabetes
    counts = np.random.RandomState(0).poisson(np.exp(0.5 * y + 1.0)).astype(float)
    kw = dict(loss="poisson", hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPRegressor(backend=backend, **kw).fit(X, counts)
        ref = SkMLPRegressor(**kw).fit(X, counts)
    assert ours.out_activation_ == ref.out_activation_ == "exp"
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-5)
    with pytest.raises(ValueError, match="Some value"):
        MLPRegressor(loss="poisson").fit(X, counts - 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_by_batch_losses_train_like_the_fused_heads(backend, diabetes):
    """huber and poisson train batch by batch through the squared-error head; a
    huber_delta past every residual is the halved squared error: same run."""
    X, y = diabetes
    kw = dict(hidden_layer_sizes=(8,), max_iter=4, batch_size=64, shuffle=False, random_state=0,
              backend=backend, learning_rate_init=0.01)
    fused = _fit_quiet(MLPRegressor(loss="squared_error", **kw), X, y)
    steps = _fit_quiet(MLPRegressor(loss="huber", huber_delta=1e6, **kw), X, y)
    np.testing.assert_allclose(steps.loss_curve_, fused.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(steps.predict(X), fused.predict(X), rtol=1e-6, atol=1e-9)
    shuffled = dict(kw, shuffle=True, max_iter=30)
    pois = _fit_quiet(MLPRegressor(loss="poisson", **shuffled), X, np.exp(y / 2))
    assert pois.loss_curve_[-1] < 0.5 * pois.loss_curve_[0] and (pois.predict(X) > 0).all()
    # the shuffled batch order is a function of random_state: a new estimator, and a refit of one
    # that has trained (its order stream restarts), give the same run
    twin = _fit_quiet(MLPRegressor(loss="poisson", **shuffled), X, np.exp(y / 2))
    np.testing.assert_array_equal(twin.predict(X), pois.predict(X))
    np.testing.assert_array_equal(_fit_quiet(twin, X, np.exp(y / 2)).predict(X), pois.predict(X))
    again = pickle.loads(pickle.dumps(pois))
    pois.partial_fit(X, np.exp(y / 2))
    again.partial_fit(X, np.exp(y / 2))
    np.testing.assert_array_equal(pois.predict(X), again.predict(X))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_epoch_losses_follow_scikit_learn(backend, solver, digits):
    """Unshuffled mini-batches: the same batches in the same order, so the loss
    curves agree.  SGD with Nesterov momentum at a constant rate is the same rule
    in both; Adam's epsilon is PyTorch's in fastnet, scikit-learn's is
    eps * sqrt(1 - beta_2^t): negligible on features without zero columns."""
    X, y = make_classification(n_samples=400, n_features=20, n_informative=10, n_classes=4, random_state=0)
    kw = dict(hidden_layer_sizes=(16,), solver=solver, max_iter=4, batch_size=50, shuffle=False,
              random_state=SEED, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(backend=backend, **kw).fit(X, y)
        ref = SkMLPClassifier(**kw).fit(X, y)
    assert len(ours.loss_curve_) == 4 and ours.n_iter_ == 4 and ours.t_ == 4 * X.shape[0]
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9 if solver == "sgd" else 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_loss_definitions(backend, diabetes):
    """loss_ recomputed in NumPy from the fitted weights: data loss (halved squared
    error, mean absolute error, multi-label log-loss summed over labels) +
    alpha / (2 n) ||W||^2 + l1 / n |W|."""
    X, y = diabetes
    Y2 = np.column_stack([y, np.tanh(y)])
    Xm, Ym = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3, random_state=0)
    cases = [(MLPRegressor(loss="squared_error", alpha=0.1, l1=0.01), X, Y2,
              lambda P, T: 0.5 * ((P - T) ** 2).mean()),
             (MLPRegressor(loss="absolute_error", alpha=0.1), X, y, lambda P, T: np.abs(P - T).mean()),
             (MLPRegressor(loss="huber", huber_delta=0.5, alpha=0.1), X, Y2,
              lambda P, T: np.where(np.abs(P - T) <= 0.5, 0.5 * (P - T) ** 2, 0.5 * (np.abs(P - T) - 0.25)).mean()),
             (MLPRegressor(loss="poisson", alpha=0.1), X, np.exp(y / 2),
              lambda P, T: (T * np.log(T / P) - T + P).mean()),
             (MLPClassifier(alpha=0.1), Xm, Ym,
              lambda P, T: -(T * np.log(P) + (1 - T) * np.log(1 - P)).sum(axis=1).mean())]
    for est, Xc, Yc, data_loss in cases:
        est.set_params(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=10, random_state=1, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(Xc, Yc)
        P = est.predict_proba(Xc) if hasattr(est, "predict_proba") else est.predict(Xc)
        n = Xc.shape[0]
        sq = sum((W.astype(float) ** 2).sum() for W in est.coefs_)
        ab = sum(np.abs(W.astype(float)).sum() for W in est.coefs_)
        expect = data_loss(P, Yc) + est.alpha / (2 * n) * sq + est.l1 / n * ab
        np.testing.assert_allclose(est.loss_, expect, rtol=1e-6)


# ------------------------------------------------- scikit-learn's tools around it
def test_pipeline_search_cv_calibration_importance(digits):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline

    X, y = digits
    X, y = X[:240], y[:240]
    base = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.01, random_state=SEED)
    pipe = make_pipeline(StandardScaler(), base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert pipe.fit(X, y).score(X, y) > 0.9
        scores = cross_val_score(pipe, X, y, cv=3)
        assert scores.shape == (3,) and scores.min() > 0.6
        np.testing.assert_array_equal(scores, cross_val_score(pipe, X, y, cv=3))  # deterministic
        grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=2).fit(X, y)
        assert set(grid.cv_results_["param_mlpclassifier__alpha"]) == {1e-4, 1e-1}
        rnd = RandomizedSearchCV(base, {"learning_rate_init": [1e-3, 1e-2], "hidden_layer_sizes": [(8,), (16,)]},
                                 n_iter=2, cv=2, random_state=0).fit(X, y)
        assert rnd.best_estimator_.n_iter_ > 0
        cal = CalibratedClassifierCV(clone(base), cv=2).fit(X, y)
        np.testing.assert_allclose(cal.predict_proba(X).sum(axis=1), 1.0, rtol=1e-6)
        fitted = clone(base).fit(X, y)
    imp = permutation_importance(fitted, X[:60], y[:60], n_repeats=2, random_state=0)
    assert imp.importances_mean.shape == (X.shape[1],)
    assert clone(base).get_params() == base.get_params()


def test_dataframe_feature_names(diabetes):
    pd = pytest.importorskip("pandas")
    X, y = diabetes
    df = pd.DataFrame(X, columns=["f%d" % i for i in range(X.shape[1])])
    est = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(df, y)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    np.testing.assert_array_equal(est.predict(df), est.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df.rename(columns={"f0": "zz"}))
    with pytest.raises(ValueError, match="X has 3 features, but MLPRegressor is expecting 10 features"):
        est.predict(X[:, :3])


# ------------------------------------------------------- training behaviour
@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_is_fit_epoch_by_epoch(backend, digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(12,), random_state=SEED, backend=backend, n_iter_no_change=50)
    full = MLPClassifier(max_iter=3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full.fit(X, y)
    inc = MLPClassifier(**kw)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        inc.partial_fit(X, y)
    for i in range(3):
        inc.partial_fit(X, y, classes=np.unique(y))
        if i == 0:  # pickled and restored mid-way: the same run continues
            inc = pickle.loads(pickle.dumps(inc))
    assert inc.n_iter_ == 1 and inc.t_ == 3 * X.shape[0] and len(inc.loss_curve_) == 3
    np.testing.assert_array_equal(inc.loss_curve_, full.loss_curve_)
    for a, b in zip(inc.coefs_, full.coefs_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not the same as on last call"):
        inc.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y.astype(float))


def test_warm_start_continues(digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(12,), max_iter=5, random_state=SEED, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        first = list(est.loss_curve_)
        est.fit(X, y)
    assert len(est.loss_curve_) == 10 and est.loss_curve_[:5] == first and est.loss_curve_[5] < first[0]
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
        est.fit(X[y < 5], y[y < 5])


def _split_like_sklearn(est, X, y, n_hidden):
    """The validation split scikit-learn's rules draw: after the initial weights."""
    from sklearn.model_selection import train_test_split
    rs = np.random.RandomState(est.random_state)
    units = [X.shape[1], n_hidden, len(np.unique(y))]
    for a, b in zip(units[:-1], units[1:]):
        rs.uniform(size=(a, b)), rs.uniform(size=b)
    return train_test_split(X, y, random_state=rs, test_size=est.validation_fraction)


@pytest.mark.parametrize("metric", ["score", "loss"])
def test_early_stopping_restores_best(metric, digits):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(12,), max_iter=200, random_state=SEED, early_stopping=True,
                        n_iter_no_change=3, learning_rate_init=0.05, early_stopping_metric=metric)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ < 200
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == est.n_iter_
    _, X_val, _, y_val = _split_like_sklearn(est, X, y, 12)
    if metric == "score":
        assert est.best_validation_score_ == max(est.validation_scores_)
        assert est.score(X_val, y_val) == est.best_validation_score_
    else:
        val = -np.log(est.predict_proba(X_val)[np.arange(len(y_val)), y_val]).mean()
        np.testing.assert_allclose(val, min(est.validation_loss_curve_), rtol=1e-6)


def test_learning_rate_schedules(digits, capsys):
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", random_state=SEED, verbose=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(learning_rate="adaptive", tol=10.0, n_iter_no_change=1, max_iter=6, **kw).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out
    assert "Setting learning rate to 0.000200" in out and "Setting learning rate to 0.000040" in out
    inv = MLPClassifier(learning_rate="invscaling", power_t=0.5, max_iter=3, **kw)
    const = MLPClassifier(learning_rate="constant", max_iter=3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        inv.fit(X, y)
        const.fit(X, y)
    assert inv.loss_curve_[0] == const.loss_curve_[0] and inv.loss_curve_[1] != const.loss_curve_[1]
    capsys.readouterr()


def test_convergence_warnings(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 2 iteration"):
        MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=2, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=500, tol=0.5, random_state=0).fit(X, y)
    assert est.n_iter_ == 12  # the loss did not improve by tol for n_iter_no_change=10 epochs


# ------------------------------------------------------------------- extras
def _fit_quiet(est, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kw)


def test_class_weight_is_sample_weight(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=SEED)
    table = {c: 1.0 + c for c in range(10)}
    a = _fit_quiet(MLPClassifier(class_weight=table, **kw), X, y)
    b = _fit_quiet(MLPClassifier(**kw), X, y, sample_weight=np.array([table[c] for c in y]))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    counts = np.bincount(y)
    bal = _fit_quiet(MLPClassifier(class_weight="balanced", **kw), X, y)
    ref = _fit_quiet(MLPClassifier(**kw), X, y, sample_weight=(len(y) / (10 * counts))[y])
    np.testing.assert_allclose(bal.predict_proba(X), ref.predict_proba(X), rtol=1e-12)
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=np.arange(10))


def test_dropout_l1_dtype_threads(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=0.01, random_state=SEED)
    plain = _fit_quiet(MLPClassifier(**kw), X, y)
    drop = _fit_quiet(MLPClassifier(dropout=0.3, **kw), X, y)
    assert drop.score(X, y) > 0.85 and drop.loss_curve_[-1] > plain.loss_curve_[-1]  # noisier training loss
    sparse = _fit_quiet(MLPClassifier(l1=1.0, **kw), X, y)
    assert sum(np.abs(c).sum() for c in sparse.coefs_) < 0.5 * sum(np.abs(c).sum() for c in plain.coefs_)
    f32 = _fit_quiet(MLPClassifier(dtype="float32", **kw), X, y)
    assert f32.coefs_[0].dtype == np.float32 and f32.predict_proba(X).dtype == np.float32
    assert _fit_quiet(MLPClassifier(**kw), X.astype(np.float32), y).coefs_[0].dtype == np.float32
    before = fastnet.get_num_threads()
    one = _fit_quiet(MLPClassifier(n_threads=1, **kw), X, y)
    two = _fit_quiet(MLPClassifier(n_threads=2, **kw), X, y)
    assert fastnet.get_num_threads() == before
    np.testing.assert_array_equal(one.predict_proba(X), two.predict_proba(X))
    np.testing.assert_array_equal(one.predict_proba(X), plain.predict_proba(X))


def test_absolute_error_is_robust(diabetes):
    X, y = diabetes
    y_bad = y.copy()
    y_bad[::10] += 50.0  # gross outliers
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=200, random_state=0)
    mae = _fit_quiet(MLPRegressor(loss="absolute_error", **kw), X, y_bad)
    mse = _fit_quiet(MLPRegressor(loss="squared_error", **kw), X, y_bad)
    clean = np.ones(len(y), bool)
    clean[::10] = False
    err = lambda est: np.abs(est.predict(X[clean]) - y[clean]).mean()  # noqa: E731
    assert err(mae) < 0.8 * err(mse)


def test_pickle_and_deepcopy_keep_everything(digits):
    X, y = digits
    est = _fit_quiet(MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=SEED), X, y)
    for other in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        np.testing.assert_array_equal(other.predict_proba(X), est.predict_proba(X))
        assert other.loss_curve_ == est.loss_curve_ and other.t_ == est.t_
        other.partial_fit(X, y)
        assert other.coefs_[0] is not est.coefs_[0]
    a, b = pickle.loads(pickle.dumps(est)), pickle.loads(pickle.dumps(est))
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    est.coefs_[0][...] = 0.0  # coefs_ are the model's weights
    assert np.ptp(est.predict_proba(X[:5])[:, 0]) < np.ptp(a.predict_proba(X[:5])[:, 0]) + 1.0


# -------------------------------------------------------------------- bad input
def test_bad_parameters_raise_in_fit_and_train_nothing(digits):
    X, y = digits
    est = _fit_quiet(MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0), X, y)
    before = [c.copy() for c in est.coefs_]
    for params, match in [({"alpha": -1.0}, "The 'alpha' parameter of MLPClassifier must be a float in the range"),
                          ({"solver": "newton"}, "The 'solver' parameter of MLPClassifier must be a str among"),
                          ({"dropout": 1.0}, "The 'dropout' parameter"),
                          ({"backend": "gpu"}, "The 'backend' parameter")]:
        bad = clone(est).set_params(**params)  # no error before fit
        with pytest.raises(InvalidParameterError, match=match):
            bad.fit(X, y)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes must be > 0, got \[8, 0\]"):
        MLPClassifier(hidden_layer_sizes=(8, 0)).fit(X, y)
    with pytest.raises(ValueError, match="not supported with solver='lbfgs'"):
        MLPClassifier(solver="lbfgs", dropout=0.5).fit(X, y)
    est.set_params(warm_start=True)
    X_nan = X.copy()
    X_nan[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(X_nan, y)
    with pytest.raises(ValueError, match="has classes not in"):
        est.partial_fit(X, y + 100)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes=\[9\], activation='relu' differ from the fitted"):
        est.set_params(hidden_layer_sizes=(9,)).fit(X, y)
    est.set_params(hidden_layer_sizes=(8,))
    est.set_params(class_weight={c: float(c != 3) for c in range(10)})
    with pytest.raises(ValueError, match="sum to zero"):
        est.fit(X, y, sample_weight=(y == 3).astype(float))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        est.fit(X, y, sample_weight=np.zeros(len(y)))
    for a, b in zip(before, est.coefs_):
        np.testing.assert_array_equal(a, b)
    assert est.n_iter_ == 2


def test_import_fastnet_does_not_import_sklearn():
    code = "import sys, fastnet; assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import fastnet.sklearn\nexcept ModuleNotFoundError as e:\n    print(e.name, '|', e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("sklearn | fastnet.sklearn needs scikit-learn >= 1.6"), out.stdout + out.stderr
    assert "pip install 'fastnet-mlp[sklearn]'" in out.stdout


def test_perceptron_and_one_vs_rest_are_fastnets_in_a_pipeline():
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    from fastnet.multiclass import OneVsRest as FnOneVsRest
    from fastnet.multiclass import load_iris
    from fastnet.perceptron import Perceptron as FnPerceptron

    X, y, _ = load_iris()
    Xs = StandardScaler().fit_transform(X)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    two = y < 2
    ours = Perceptron(eta=0.1, n_iter=10).fit(Xs[two], labels[two])
    ref = FnPerceptron(eta=0.1, n_iter=10).fit(Xs[two], labels[two])
    np.testing.assert_array_equal(ours.w_, ref.w_)
    assert ours.errors_ == ref.errors_
    np.testing.assert_array_equal(ours.predict(Xs), ref.predict(Xs))
    ovr = OneVsRest(Perceptron(eta=0.1, n_iter=10)).fit(Xs, labels)
    fn_ovr = FnOneVsRest(lambda: FnPerceptron(eta=0.1, n_iter=10)).fit(Xs, labels)
    np.testing.assert_array_equal(ovr.predict(Xs), fn_ovr.predict(Xs))
    multi = Perceptron(eta=0.1, n_iter=10).fit(Xs, labels)  # several classes: one-vs-rest inside
    np.testing.assert_allclose(multi.decision_function(Xs), fn_ovr.decision_function(Xs), rtol=1e-12)
    for est in (Perceptron(eta=0.1, n_iter=10), OneVsRest()):
        pipe = make_pipeline(StandardScaler(), est).fit(X, labels)
        np.testing.assert_array_equal(pipe.predict(X), clone(est).fit(Xs, labels).predict(Xs))
        scores = cross_val_score(make_pipeline(StandardScaler(), est), X, labels, cv=3)
        assert scores.shape == (3,) and np.isfinite(scores).all()
    with pytest.raises(InvalidParameterError, match="The 'eta' parameter of Perceptron"):
        Perceptron(eta=0).fit(Xs, labels)


def test_sparse_input_is_densified(digits):
    from scipy import sparse
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    dense = _fit_quiet(MLPClassifier(**kw), X, y)
    csr = _fit_quiet(MLPClassifier(**kw), sparse.csr_matrix(X), y)
    np.testing.assert_array_equal(csr.predict_proba(sparse.csc_matrix(X)), dense.predict_proba(X))


def test_too_small_validation_set_leaves_the_fitted_estimator(digits):
    X, y = digits
    est = _fit_quiet(MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0), X, y)
    curve, proba = list(est.loss_curve_), est.predict_proba(X)
    est.set_params(early_stopping=True, validation_fraction=0.001)
    with pytest.raises(ValueError, match="The validation set is too small"):
        est.fit(X, y)
    assert est.loss_curve_ == curve and est.validation_scores_ is None
    np.testing.assert_array_equal(est.predict_proba(X), proba)
