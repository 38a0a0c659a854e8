"""Tests for fastnet.metrics: equality with scikit-learn on random inputs,
edge cases, error messages and the Metric objects used by Model.compile."""

import math
import warnings

import numpy as np
import pytest

from fastnet import metrics as fm

skm = pytest.importorskip("sklearn.metrics")
from sklearn.exceptions import UndefinedMetricWarning as SkUndefinedMetricWarning  # noqa: E402

N_CASES = 50  # random cases per function (sklearn calls dominate the run time)
ZERO_DIVISIONS = ["warn", 0.0, 1.0, np.nan]


# ---------------------------------------------------------------------------
# Random problem generators
# ---------------------------------------------------------------------------


def _labels_of(rng, kind, k):
    if kind == "int":
        start = int(rng.integers(-1, 2))
        return np.arange(start, start + k)
    if kind == "float":
        return np.arange(k, dtype=np.float64)
    return np.array(["ant", "bee", "cat", "dog", "eel", "fox"][:k])


def random_problem(rng, y_type=None):
    """Random (y_true, y_pred, sample_weight, pos_label, y_type)."""
    if y_type is None:
        y_type = rng.choice(["binary", "multiclass", "multilabel"])
    n = int(rng.integers(1, 30))
    if y_type == "multilabel":
        k = int(rng.integers(2, 5))
        p = rng.uniform(0.05, 0.95)
        y_true = (rng.random((n, k)) < p).astype(int)
        y_pred = (rng.random((n, k)) < p).astype(int)
        if rng.random() < 0.3:  # correlated predictions
            flip = rng.random((n, k)) < 0.2
            y_pred = np.where(flip, 1 - y_true, y_true)
        pos_label = 1
    else:
        k = 2 if y_type == "binary" else int(rng.integers(3, 6))
        kind = rng.choice(["int", "float", "str"])
        labels = _labels_of(rng, kind, k)
        probs = rng.dirichlet(np.ones(k))
        y_true = rng.choice(labels, size=n, p=probs)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(labels, size=n))
        present = np.union1d(y_true, y_pred)
        pos_label = present[-1].item()  # used only when sklearn sees a binary target
    r = rng.random()
    if r < 0.35:
        sw = None
    elif r < 0.7:
        sw = rng.uniform(0.0, 2.0, size=n)
    else:
        sw = rng.integers(0, 4, size=n)
        sw[0] = 1  # sklearn rejects all-zero weights
    return y_true, y_pred, sw, pos_label, y_type


def call_both(ours, theirs):
    """Run both callables and return (value, undefined-warnings) for each."""
    with warnings.catch_warnings(record=True) as w1:
        warnings.simplefilter("always")
        v1 = ours()
    with warnings.catch_warnings(record=True) as w2:
        warnings.simplefilter("always")
        v2 = theirs()
    m1 = sorted(str(w.message) for w in w1 if issubclass(w.category, fm.UndefinedMetricWarning))
    m2 = sorted(str(w.message) for w in w2 if issubclass(w.category, SkUndefinedMetricWarning))
    return v1, v2, m1, m2


def assert_same(v1, v2, rtol=1e-12, atol=1e-12):
    if isinstance(v2, np.ndarray):
        assert isinstance(v1, np.ndarray)
        assert v1.shape == v2.shape
    else:
        assert isinstance(v1, float), type(v1)
    np.testing.assert_allclose(v1, v2, rtol=rtol, atol=atol, equal_nan=True)


def _some(options, case, n):
    """n of the options, rotating with the case number (fewer slow sklearn calls)."""
    return [options[(case + i) % len(options)] for i in range(min(n, len(options)))]


def _valid_averages(y_type):
    if y_type == "binary":
        return ["binary", "micro", "macro", "weighted", None]
    if y_type == "multiclass":
        return ["micro", "macro", "weighted", None]
    return ["micro", "macro", "weighted", "samples", None]


# ---------------------------------------------------------------------------
# accuracy_score
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(2))
def test_accuracy_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    for _ in range(N_CASES):
        y_true, y_pred, sw, _, _ = random_problem(rng)
        for normalize in (True, False):
            if normalize and sw is not None and np.sum(sw) == 0:
                continue
            ours = fm.accuracy_score(y_true, y_pred, normalize=normalize, sample_weight=sw)
            theirs = skm.accuracy_score(y_true, y_pred, normalize=normalize, sample_weight=sw)
            assert isinstance(ours, float)
            assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)


def test_accuracy_multilabel_is_subset_accuracy():
    y_true = np.array([[0, 1], [1, 1], [1, 0]])
    y_pred = np.array([[0, 1], [1, 0], [1, 0]])
    assert fm.accuracy_score(y_true, y_pred) == pytest.approx(2 / 3)
    assert fm.accuracy_score(y_true, y_pred, normalize=False) == 2.0
    assert fm.accuracy_score(["a", "b", "a"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    # column vectors are flattened
    assert fm.accuracy_score(np.array([[1], [0]]), [1, 1]) == 0.5


# ---------------------------------------------------------------------------
# precision / recall / f1 / fbeta
# ---------------------------------------------------------------------------

_PRF = [
    (fm.precision_score, skm.precision_score),
    (fm.recall_score, skm.recall_score),
    (fm.f1_score, skm.f1_score),
]


@pytest.mark.parametrize("ours_fn,theirs_fn", _PRF, ids=["precision", "recall", "f1"])
def test_prf_matches_sklearn(ours_fn, theirs_fn):
    rng = np.random.default_rng(123)
    n_checked = 0
    for case in range(N_CASES):
        y_true, y_pred, sw, pos_label, _ = random_problem(rng)
        y_type = skm._classification._check_targets(y_true, y_pred)[0]
        zd = ZERO_DIVISIONS[int(rng.integers(len(ZERO_DIVISIONS)))]
        for average in _some(_valid_averages(y_type), case, 3):
            kwargs = dict(average=average, sample_weight=sw, zero_division=zd)
            if average == "binary":
                kwargs["pos_label"] = pos_label
            v1, v2, m1, m2 = call_both(
                lambda: ours_fn(y_true, y_pred, **kwargs),
                lambda: theirs_fn(y_true, y_pred, **kwargs),
            )
            assert_same(v1, v2)
            assert m1 == m2
            n_checked += 1
    assert n_checked >= 3 * N_CASES


@pytest.mark.parametrize("ours_fn,theirs_fn", _PRF, ids=["precision", "recall", "f1"])
def test_prf_with_labels_matches_sklearn(ours_fn, theirs_fn):
    rng = np.random.default_rng(7)
    for case in range(N_CASES // 2):
        y_true, y_pred, sw, _, y_type = random_problem(rng)
        if y_type == "multilabel":
            k = y_true.shape[1]
            labels = rng.permutation(k)[: int(rng.integers(1, k + 1))]
        else:
            present = np.union1d(y_true, y_pred)
            labels = rng.permutation(present)[: int(rng.integers(1, len(present) + 1))]
            if rng.random() < 0.3 and present.dtype.kind != "U":
                labels = np.append(labels, 99)  # a label absent from the data
        for average in _some(["micro", "macro", "weighted", None], case, 2):
            kwargs = dict(labels=labels, average=average, sample_weight=sw, zero_division=0)
            assert_same(ours_fn(y_true, y_pred, **kwargs), theirs_fn(y_true, y_pred, **kwargs))


def test_fbeta_matches_sklearn():
    rng = np.random.default_rng(11)
    for case in range(N_CASES):
        y_true, y_pred, sw, pos_label, _ = random_problem(rng)
        y_type = skm._classification._check_targets(y_true, y_pred)[0]
        beta = float(rng.choice([0.0, 0.5, 2.0, np.inf]))
        for average in _some(_valid_averages(y_type), case, 2):
            kwargs = dict(beta=beta, average=average, sample_weight=sw, zero_division="warn")
            if average == "binary":
                kwargs["pos_label"] = pos_label
            v1, v2, m1, m2 = call_both(
                lambda: fm.fbeta_score(y_true, y_pred, **kwargs),
                lambda: skm.fbeta_score(y_true, y_pred, **kwargs),
            )
            assert_same(v1, v2)
            assert m1 == m2


def test_prf_known_values():
    y_true = [0, 1, 1, 0, 1, 1]
    y_pred = [0, 1, 0, 1, 1, 1]
    assert fm.precision_score(y_true, y_pred) == pytest.approx(3 / 4)
    assert fm.recall_score(y_true, y_pred) == pytest.approx(3 / 4)
    assert fm.f1_score(y_true, y_pred) == pytest.approx(3 / 4)
    assert fm.precision_score(y_true, y_pred, pos_label=0) == pytest.approx(1 / 2)
    np.testing.assert_allclose(fm.recall_score(y_true, y_pred, average=None), [1 / 2, 3 / 4])


def test_zero_division_edge_cases():
    y = [0, 0, 0, 0]
    with pytest.warns(fm.UndefinedMetricWarning, match="no predicted samples"):
        assert fm.precision_score(y, y) == 0.0
    with pytest.warns(fm.UndefinedMetricWarning, match="no true samples"):
        assert fm.recall_score(y, y) == 0.0
    with pytest.warns(fm.UndefinedMetricWarning, match="F-score is ill-defined"):
        assert fm.f1_score(y, y) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fm.precision_score(y, y, zero_division=1) == 1.0
        assert fm.recall_score(y, y, zero_division=1.0) == 1.0
        assert math.isnan(fm.f1_score(y, y, zero_division=np.nan))
        # nan entries are left out of averages
        assert fm.precision_score([0, 1, 2], [0, 0, 0], average="macro",
                                  zero_division=np.nan) == pytest.approx(1 / 3)
    # all positive: specificity is undefined (no negative samples)
    with pytest.warns(fm.UndefinedMetricWarning, match="Specificity is ill-defined.*no negative"):
        assert fm.specificity_score([1, 1], [1, 0]) == 0.0
    assert fm.specificity_score([1, 1], [1, 0], zero_division=1) == 1.0
    with pytest.raises(ValueError, match="zero_division"):
        fm.precision_score([0, 1], [0, 1], zero_division=0.5)


def test_string_labels_and_pos_label():
    y_true = ["spam", "ham", "spam", "spam", "ham"]
    y_pred = ["spam", "spam", "ham", "spam", "ham"]
    assert fm.precision_score(y_true, y_pred, pos_label="spam") == pytest.approx(2 / 3)
    assert fm.recall_score(y_true, y_pred, pos_label="ham") == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match=r"pos_label=1 is not a valid label"):
        fm.precision_score(y_true, y_pred)
    with pytest.raises(ValueError, match=r"pos_label='eggs' is not a valid label"):
        fm.f1_score(y_true, y_pred, pos_label="eggs")
    with pytest.raises(ValueError, match="pos_label=2 is not a valid label"):
        fm.recall_score([0, 1, 1], [1, 1, 0], pos_label=2)
    # pos_label absent but only one label present: allowed (sklearn)
    with pytest.warns(fm.UndefinedMetricWarning):
        assert fm.precision_score(["a", "a"], ["a", "a"]) == 0.0
    with pytest.warns(UserWarning, match="pos_label .* is ignored"):
        fm.precision_score(y_true, y_pred, average="macro", pos_label="spam")


def test_mixed_label_types_raise():
    with pytest.raises(ValueError, match="Mix of label input types"):
        fm.accuracy_score([0, 1, 1], ["a", "b", "b"])
    with pytest.raises(ValueError, match="Mix of label input types"):
        fm.precision_score(np.array([1, "a"], dtype=object), [1, 1])


def test_binary_average_invalid_for_multiclass_and_multilabel():
    with pytest.raises(ValueError, match="Target is multiclass but average='binary'"):
        fm.precision_score([0, 1, 2], [0, 2, 1])
    with pytest.raises(ValueError, match="Target is multilabel-indicator but average='binary'"):
        fm.recall_score(np.eye(3, dtype=int), np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="average has to be one of"):
        fm.f1_score([0, 1], [0, 1], average="mean")
    with pytest.raises(ValueError, match="Samplewise"):
        fm.f1_score([0, 1, 2], [0, 1, 2], average="samples")


# ---------------------------------------------------------------------------
# specificity
# ---------------------------------------------------------------------------


def _reference_specificity(y_true, y_pred, average, sw, pos_label):
    """Independent reference: per-label sums over masks, and sklearn's recall of
    the negated problem for the binary case."""
    if average == "binary":
        return skm.recall_score(np.asarray(y_true) != pos_label, np.asarray(y_pred) != pos_label,
                                sample_weight=sw, zero_division=0)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    w = np.ones(len(y_true)) if sw is None else np.asarray(sw, dtype=float)
    if y_true.ndim == 2:
        cols = [(y_true[:, c] == 1, y_pred[:, c] == 1) for c in range(y_true.shape[1])]
    else:
        cols = [(y_true == c, y_pred == c) for c in np.union1d(y_true, y_pred)]
    tn = np.array([np.sum(w[~t & ~p]) for t, p in cols])
    fp = np.array([np.sum(w[~t & p]) for t, p in cols])
    support = np.array([np.sum(w[t]) for t, p in cols])
    if average == "micro":
        d = tn.sum() + fp.sum()
        return tn.sum() / d if d else 0.0
    per = np.array([a / b if b else 0.0 for a, b in zip(tn, tn + fp)])
    if average is None:
        return per
    if average == "macro":
        return per.mean()
    return np.average(per, weights=support) if support.sum() else per.mean()


def test_specificity_matches_reference():
    rng = np.random.default_rng(5)
    for _ in range(N_CASES):
        y_true, y_pred, sw, pos_label, y_type = random_problem(rng)
        sk_type = skm._classification._check_targets(y_true, y_pred)[0]
        for average in _valid_averages(sk_type):
            if average == "samples":
                continue
            pl = pos_label if average == "binary" else 1
            ours = fm.specificity_score(y_true, y_pred, average=average, sample_weight=sw,
                                        pos_label=pl, zero_division=0)
            ref = _reference_specificity(y_true, y_pred, average, sw, pos_label)
            np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
            if average == "binary":
                # = recall of the negative class
                neg = [v for v in np.union1d(y_true, y_pred).tolist() if v != pos_label]
                if len(neg) == 1:
                    r = skm.recall_score(y_true, y_pred, pos_label=neg[0], sample_weight=sw,
                                         zero_division=0)
                    assert ours == pytest.approx(r, abs=1e-12)


def test_specificity_samples_average():
    y_true = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    y_pred = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    # per-sample tn/(tn+fp): 1/2, 1/1, 2/3
    assert fm.specificity_score(y_true, y_pred, average="samples") == pytest.approx(
        (1 / 2 + 1 + 2 / 3) / 3)
    np.testing.assert_allclose(fm.specificity_score(y_true, y_pred, average=None),
                               [1 / 2, 1 / 2, 1.0])


# ---------------------------------------------------------------------------
# confusion matrices
# ---------------------------------------------------------------------------


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(17)
    checked = 0
    while checked < N_CASES:
        y_true, y_pred, sw, _, y_type = random_problem(
            rng, rng.choice(["binary", "multiclass"]))
        present = np.union1d(y_true, y_pred)
        labels = None
        if rng.random() < 0.5:
            labels = rng.permutation(present)[: int(rng.integers(1, len(present) + 1))]
            if not np.isin(labels, y_true).any():
                continue
        normalize = rng.choice(["none", "true", "pred", "all"])
        normalize = None if normalize == "none" else str(normalize)
        kwargs = dict(labels=labels, sample_weight=sw, normalize=normalize)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = fm.confusion_matrix(y_true, y_pred, **kwargs)
            theirs = skm.confusion_matrix(y_true, y_pred, **kwargs)
        assert ours.shape == theirs.shape
        assert ours.dtype.kind == theirs.dtype.kind
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
        checked += 1


def test_confusion_matrix_edge_cases():
    cm = fm.confusion_matrix(["b", "a", "b"], ["b", "b", "b"], labels=["b", "a", "z"])
    np.testing.assert_array_equal(cm, [[2, 0, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.warns(UserWarning, match="single label"):
        fm.confusion_matrix([1, 1], [1, 1])
    with pytest.raises(ValueError, match="at least one label"):
        fm.confusion_matrix([0, 1], [0, 1], labels=[])
    with pytest.raises(ValueError, match="must be in y_true"):
        fm.confusion_matrix([0, 1], [0, 1], labels=[5])
    with pytest.raises(ValueError, match="normalize"):
        fm.confusion_matrix([0, 1], [0, 1], normalize="rows")
    with pytest.raises(ValueError, match="multilabel-indicator is not supported"):
        fm.confusion_matrix(np.eye(2, dtype=int), np.eye(2, dtype=int))


def test_multilabel_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(19)
    for _ in range(N_CASES):
        y_true, y_pred, sw, _, y_type = random_problem(rng)
        labels = None
        if rng.random() < 0.5:
            if y_type == "multilabel":
                labels = rng.permutation(y_true.shape[1])[: int(rng.integers(1, y_true.shape[1] + 1))]
            else:
                present = np.union1d(y_true, y_pred)
                labels = rng.permutation(present)[: int(rng.integers(1, len(present) + 1))]
        samplewise = y_type == "multilabel" and rng.random() < 0.3
        kwargs = dict(labels=labels, sample_weight=sw, samplewise=samplewise)
        ours = fm.multilabel_confusion_matrix(y_true, y_pred, **kwargs)
        theirs = skm.multilabel_confusion_matrix(y_true, y_pred, **kwargs)
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# roc_auc_score
# ---------------------------------------------------------------------------


def _random_scores(rng, shape):
    s = rng.random(shape)
    if rng.random() < 0.5:  # many ties
        s = np.round(s, int(rng.integers(0, 2)))
    return s


def _random_weights(rng, n):
    r = rng.random()
    if r < 0.4:
        return None
    if r < 0.7:
        return rng.uniform(0.0, 3.0, size=n)
    return rng.integers(0, 4, size=n).astype(float)


def test_roc_auc_binary_matches_sklearn():
    rng = np.random.default_rng(23)
    checked = 0
    while checked < N_CASES:
        n = int(rng.integers(2, 60))
        kind = rng.choice(["01", "pm1", "str", "bool"])
        y01 = rng.random(n) < rng.uniform(0.1, 0.9)
        if y01.all() or not y01.any():
            continue
        y_true = {"01": y01.astype(int), "pm1": np.where(y01, 1, -1),
                  "str": np.where(y01, "yes", "no"), "bool": y01}[str(kind)]
        y_score = _random_scores(rng, n)
        sw = _random_weights(rng, n)
        if sw is not None and (sw[y01].sum() == 0 or sw[~y01].sum() == 0):
            continue
        max_fpr = None if rng.random() < 0.7 else float(rng.uniform(0.05, 1.0))
        ours = fm.roc_auc_score(y_true, y_score, sample_weight=sw, max_fpr=max_fpr)
        theirs = skm.roc_auc_score(y_true, y_score, sample_weight=sw, max_fpr=max_fpr)
        assert isinstance(ours, float)
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)
        checked += 1


def _mann_whitney_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (len(pos) * len(neg))


def test_roc_auc_ties_equal_mann_whitney():
    rng = np.random.default_rng(29)
    for _ in range(N_CASES):
        n = int(rng.integers(2, 50))
        y = (rng.random(n) < 0.5).astype(int)
        y[0], y[-1] = 0, 1
        s = rng.integers(0, 4, size=n).astype(float)  # heavy ties
        assert fm.roc_auc_score(y, s) == pytest.approx(_mann_whitney_auc(y, s), abs=1e-12)
    assert fm.roc_auc_score([0, 1], [0.5, 0.5]) == 0.5
    assert fm.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]) == pytest.approx(0.875)
    # integer sample weights == repeating samples
    y, s, w = np.array([0, 1, 0, 1, 1]), np.array([0.3, 0.3, 0.1, 0.9, 0.2]), np.array([2, 1, 3, 1, 2])
    assert fm.roc_auc_score(y, s, sample_weight=w) == pytest.approx(
        fm.roc_auc_score(np.repeat(y, w), np.repeat(s, w)), abs=1e-12)


def test_roc_auc_multilabel_matches_sklearn():
    rng = np.random.default_rng(31)
    checked = 0
    while checked < N_CASES:
        n, k = int(rng.integers(4, 40)), int(rng.integers(2, 5))
        y = (rng.random((n, k)) < rng.uniform(0.2, 0.8)).astype(int)
        y[0, :], y[1, :] = 0, 1  # every column has both classes
        s = _random_scores(rng, (n, k))
        sw = _random_weights(rng, n)
        averages = ["macro", "micro", "weighted", None]
        if (y.min(axis=1) < y.max(axis=1))[2:].all() and sw is None:
            averages.append("samples")
        if sw is not None and any(
                sw[y[:, c] == 1].sum() == 0 or sw[y[:, c] == 0].sum() == 0 for c in range(k)):
            continue
        for average in _some(averages, checked, 2):
            ours = fm.roc_auc_score(y, s, average=average, sample_weight=sw) if average != "samples" \
                else fm.roc_auc_score(y[2:], s[2:], average="samples")
            theirs = skm.roc_auc_score(y, s, average=average, sample_weight=sw) \
                if average != "samples" else skm.roc_auc_score(y[2:], s[2:], average="samples")
            assert_same(ours, theirs)
        checked += 1


def test_roc_auc_multiclass_matches_sklearn():
    rng = np.random.default_rng(37)
    checked = 0
    while checked < N_CASES:
        k = int(rng.integers(3, 6))
        n = int(rng.integers(k + 1, 50))
        labels = _labels_of(rng, rng.choice(["int", "str"]), k)
        y = rng.choice(labels, size=n)
        y[:k] = labels
        s = rng.dirichlet(np.ones(k), size=n)
        if rng.random() < 0.3:
            s = np.round(s, 1)
            s /= s.sum(axis=1, keepdims=True)
        sw = _random_weights(rng, n)
        if sw is not None and any(
                sw[y == c].sum() == 0 or sw[y != c].sum() == 0 for c in labels):
            continue
        # cycle through the averages to keep the (slow) sklearn calls few
        average = ["macro", "weighted", "micro", None][checked % 4]
        kwargs = dict(average=average, sample_weight=sw, multi_class="ovr")
        assert_same(fm.roc_auc_score(y, s, **kwargs), skm.roc_auc_score(y, s, **kwargs))
        kwargs = dict(average=["macro", "weighted"][checked % 2], multi_class="ovo")
        assert_same(fm.roc_auc_score(y, s, **kwargs), skm.roc_auc_score(y, s, **kwargs))
        checked += 1


def test_roc_auc_multiclass_with_labels():
    y = np.array([0, 2, 2, 0, 2, 0])
    s = np.array([[0.5, 0.2, 0.3], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4],
                  [0.6, 0.1, 0.3], [0.2, 0.1, 0.7], [0.4, 0.4, 0.2]])
    kwargs = dict(multi_class="ovo", labels=[0, 1, 2])
    assert fm.roc_auc_score(y, s, **kwargs) == pytest.approx(skm.roc_auc_score(y, s, **kwargs))
    with pytest.raises(ValueError, match="Only one class present"):
        fm.roc_auc_score(y, s, multi_class="ovr", labels=[0, 1, 2])
    with pytest.raises(ValueError, match="must be ordered"):
        fm.roc_auc_score(y, s, multi_class="ovr", labels=[2, 1, 0])
    with pytest.raises(ValueError, match="Number of given labels"):
        fm.roc_auc_score(y, s, multi_class="ovr", labels=[0, 1, 2, 3])


def test_roc_auc_errors():
    with pytest.raises(ValueError, match="Only one class present in y_true"):
        fm.roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"Only one class present in y_true \(column 1\)"):
        fm.roc_auc_score(np.array([[0, 1], [1, 1]]), np.array([[0.2, 0.3], [0.4, 0.5]]))
    with pytest.raises(ValueError, match="y_score contains NaN"):
        fm.roc_auc_score([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="multi_class must be in"):
        fm.roc_auc_score([0, 1, 2], np.eye(3))
    with pytest.raises(ValueError, match="sum up to 1.0"):
        fm.roc_auc_score([0, 1, 2], 2 * np.eye(3), multi_class="ovr")
    with pytest.raises(ValueError, match="inconsistent numbers of samples.*y_score has 2"):
        fm.roc_auc_score([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="average has to be one of"):
        fm.roc_auc_score([0, 1], [0.1, 0.2], average="mean")
    with pytest.raises(ValueError, match="y_score must be 1-D"):
        fm.roc_auc_score([0, 1], [[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="continuous format is not supported"):
        fm.roc_auc_score([0.5, 1.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="max_fpr"):
        fm.roc_auc_score([0, 1], [0.1, 0.2], max_fpr=0)
    with pytest.raises(TypeError, match="y_score must hold numbers"):
        fm.roc_auc_score([0, 1], ["a", "b"])


# ---------------------------------------------------------------------------
# input validation errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [fm.accuracy_score, fm.precision_score, fm.recall_score,
                                fm.f1_score, fm.specificity_score, fm.confusion_matrix])
def test_input_errors(fn):
    with pytest.raises(ValueError, match="inconsistent numbers of samples.*y_true has 3.*y_pred has 2"):
        fn([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true is a 2-D array"):
        fn(np.array([[0, 2], [1, 3]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="y_pred contains continuous values"):
        fn([0, 1, 1], [0.2, 0.7, 0.9])
    with pytest.raises(ValueError, match="y_true contains NaN"):
        fn([0.0, np.nan], [0, 1])
    with pytest.raises(TypeError, match="y_true must be array-like"):
        fn(None, [0, 1])
    with pytest.raises(TypeError, match="y_pred must be array-like"):
        fn([0, 1], 3)
    with pytest.raises(ValueError, match="sample_weight has 3 entries but y_true has 2"):
        fn([0, 1], [0, 1], sample_weight=[1, 1, 1])
    with pytest.raises(ValueError, match="Found empty input"):
        fn([], [])


def test_multilabel_mismatch_errors():
    with pytest.raises(ValueError, match="different numbers of labels"):
        fm.f1_score(np.eye(3, dtype=int), np.eye(3, dtype=int)[:, :2], average="micro")
    with pytest.raises(ValueError, match="mix of multilabel-indicator"):
        fm.accuracy_score(np.eye(3, dtype=int), [0, 1, 2])
    with pytest.raises(ValueError, match="All labels must be in"):
        fm.precision_score(np.eye(3, dtype=int), np.eye(3, dtype=int), labels=[0, 5], average="macro")


# ---------------------------------------------------------------------------
# Metric objects
# ---------------------------------------------------------------------------


def test_get_names_and_passthrough():
    for name, cls in [("accuracy", fm.Accuracy), ("acc", fm.Accuracy),
                      ("precision", fm.Precision), ("recall", fm.Recall),
                      ("specificity", fm.Specificity), ("f1", fm.F1Score),
                      ("auc", fm.AUC), ("mse", fm.MeanSquaredError),
                      ("mae", fm.MeanAbsoluteError)]:
        m = fm.get(name)
        assert isinstance(m, cls) and m.name == name
    assert fm.get("ACCURACY").name == "ACCURACY" and isinstance(fm.get("ACCURACY"), fm.Accuracy)
    p = fm.Precision(average="micro")
    assert fm.get(p) is p
    assert isinstance(fm.get(fm.Recall), fm.Recall)
    assert fm.Precision(name="prec").name == "prec"
    assert fm.get("mse").greater_is_better is False and fm.get("auc").greater_is_better is True

    def my_metric(y_true, y_score):
        return np.float32(0.25)
    m = fm.get(my_metric)
    assert m.name == "my_metric"
    v = m([0, 1], [0.2, 0.8], "binary")
    assert type(v) is float and v == 0.25

    with pytest.raises(ValueError, match="Unknown metric 'accuracy2'.*accuracy.*auc.*precision"):
        fm.get("accuracy2")
    with pytest.raises(TypeError):
        fm.get(3)
    assert "Precision(" in repr(p)


def test_function_metric_passes_weight_and_task():
    seen = {}

    def weighted(y_true, y_score, sample_weight=None, task=None):
        seen["w"], seen["task"] = sample_weight, task
        return 1
    m = fm.get(weighted)
    assert m([0, 1], [0.1, 0.9], "binary", sample_weight=[1.0, 2.0]) == 1.0
    assert list(seen["w"]) == [1.0, 2.0] and seen["task"] == "binary"
    bad = fm.get(lambda y, s: "x")
    with pytest.raises(TypeError, match="must return a number"):
        bad([0], [0.1], "binary")


def _random_task_data(rng, task):
    n = int(rng.integers(5, 60))
    sw = None if rng.random() < 0.4 else rng.uniform(0.0, 2.0, n)
    if task == "binary":
        y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(int)
        s = np.round(rng.random(n), 1)  # exact 0.5 values test the strict threshold
        if rng.random() < 0.5:
            y, s = y[:, None], s[:, None]
        return y, s, sw
    k = int(rng.integers(2, 5)) if task == "multilabel" else int(rng.integers(3, 6))
    if task == "multiclass":
        y = rng.integers(0, k, n)
        s = rng.dirichlet(np.ones(k), size=n)
        if rng.random() < 0.5:
            y = np.eye(k)[y]
        return y, s, sw
    y = (rng.random((n, k)) < 0.5).astype(int)
    s = np.round(rng.random((n, k)), 1)
    return y, s, sw


def _sk_inputs(y, s, task, threshold=0.5):
    if task == "binary":
        return np.ravel(y), (np.ravel(s) > threshold).astype(int)
    if task == "multiclass":
        yl = np.argmax(y, axis=1) if y.ndim == 2 else y
        return yl, np.argmax(s, axis=1)
    return y, (s > threshold).astype(int)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_metric_objects_match_sklearn(task):
    rng = np.random.default_rng({"binary": 41, "multiclass": 43, "multilabel": 47}[task])
    auto = {"binary": "binary", "multiclass": "macro", "multilabel": "micro"}[task]
    averages = ["auto", "micro", "macro", "weighted"] + (["samples"] if task == "multilabel" else [])
    for case in range(N_CASES):
        y, s, sw = _random_task_data(rng, task)
        yt, yp = _sk_inputs(y, s, task)
        # accuracy
        acc = fm.get("accuracy")(y, s, task, sample_weight=sw)
        assert type(acc) is float
        if task == "multilabel":
            ref = np.average(((s > 0.5) == y).mean(axis=1), weights=sw)
            sub = fm.Accuracy(multilabel="subset")(y, s, task, sample_weight=sw)
            assert sub == pytest.approx(skm.accuracy_score(yt, yp, sample_weight=sw), abs=1e-12)
        else:
            ref = skm.accuracy_score(yt, yp, sample_weight=sw)
        assert acc == pytest.approx(ref, abs=1e-12)
        # precision / recall / f1 / specificity
        pairs = [(fm.Precision, skm.precision_score), (fm.Recall, skm.recall_score),
                 (fm.F1Score, skm.f1_score)]
        for cls, sk in [pairs[case % 3]]:
            for average in _some(averages, case // 3, 1):
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # metric objects never warn
                    v = cls(average=average)(y, s, task, sample_weight=sw)
                sk_avg = auto if average == "auto" else average
                if task == "binary" and sk_avg != "binary" and len(np.union1d(yt, yp)) == 1:
                    continue  # sklearn would treat a single present label the same way
                ref = sk(yt, yp, average=sk_avg, sample_weight=sw, zero_division=0)
                assert type(v) is float
                assert v == pytest.approx(ref, abs=1e-12), (cls, average)
        spec = fm.Specificity()(y, s, task, sample_weight=sw)
        if task == "binary":
            ref = skm.recall_score(yt, yp, pos_label=0, sample_weight=sw, zero_division=0)
            if len(np.union1d(yt, yp)) == 2:
                assert spec == pytest.approx(ref, abs=1e-12)
        else:
            ref = fm.specificity_score(yt, yp, average=auto, sample_weight=sw, zero_division=0)
            assert spec == pytest.approx(ref, abs=1e-12)


def test_metric_binary_threshold_is_strict():
    y = np.array([0, 0, 1, 0])
    s = np.array([0.5, 0.5, 0.51, 0.2])
    assert fm.get("accuracy")(y, s, "binary") == 1.0  # 0.5 is predicted as class 0
    assert fm.Accuracy(threshold=0.4)(y, s, "binary") == 0.5
    assert fm.get("precision")(y, s, "binary") == 1.0
    assert fm.Precision(threshold=0.45)(y, s, "binary") == pytest.approx(1 / 3)
    assert fm.get("recall")(y, s, "binary") == 1.0
    assert fm.get("specificity")(y[:, None], s[:, None], "binary") == 1.0
    assert fm.Specificity(threshold=0.45)(y, s, "binary") == pytest.approx(1 / 3)
    assert fm.Recall(threshold=0.6)(y, s, "binary") == 0.0
    # undefined precision -> 0.0 without warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fm.get("precision")([0, 1], [0.1, 0.2], "binary") == 0.0
        assert fm.Precision(zero_division=1)([0, 1], [0.1, 0.2], "binary") == 1.0


def test_metric_auc_objects():
    rng = np.random.default_rng(53)
    for case in range(N_CASES):
        n = int(rng.integers(6, 50))
        sw = None if rng.random() < 0.5 else rng.uniform(0.1, 2.0, n)
        # binary
        y = (rng.random(n) < 0.5).astype(int)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), 1)
        v = fm.get("auc")(y[:, None], s[:, None], "binary", sample_weight=sw)
        assert type(v) is float
        assert v == pytest.approx(skm.roc_auc_score(y, s, sample_weight=sw), abs=1e-12)
        # multiclass (all classes present)
        k = int(rng.integers(3, 5))
        yc = rng.integers(0, k, n)
        yc[:k] = np.arange(k)
        p = rng.dirichlet(np.ones(k), size=n)
        assert fm.get("auc")(yc, p, "multiclass", sample_weight=sw) == pytest.approx(
            skm.roc_auc_score(yc, p, multi_class="ovr", sample_weight=sw), abs=1e-12)
        if case % 2:
            assert fm.AUC(average="weighted")(np.eye(k)[yc], p, "multiclass") == pytest.approx(
                skm.roc_auc_score(yc, p, multi_class="ovr", average="weighted"), abs=1e-12)
        else:
            logits = np.log(p) + 3.0  # not probabilities: softmax is applied first
            assert fm.get("auc")(yc, logits, "multiclass") == pytest.approx(
                skm.roc_auc_score(yc, p, multi_class="ovr"), abs=1e-9)
        # multilabel
        ym = (rng.random((n, k)) < 0.5).astype(int)
        ym[0], ym[1] = 0, 1
        sm = rng.random((n, k))
        average = ["macro", "micro", "weighted"][case % 3]
        assert fm.AUC(average=average)(ym, sm, "multilabel", sample_weight=sw) == pytest.approx(
            skm.roc_auc_score(ym, sm, average=average, sample_weight=sw), abs=1e-12)


def test_metric_auc_undefined_is_nan():
    with pytest.warns(fm.UndefinedMetricWarning):
        assert math.isnan(fm.get("auc")([1, 1, 1], [0.2, 0.4, 0.9], "binary"))
    # columns with a single class are skipped
    y = np.array([[0, 1], [1, 1], [0, 1], [1, 1]])
    s = np.array([[0.1, 0.2], [0.8, 0.3], [0.3, 0.9], [0.7, 0.1]])
    assert fm.get("auc")(y, s, "multilabel") == 1.0
    # multiclass batch without class 2: mean of the defined one-vs-rest AUCs
    yc = np.array([0, 1, 0, 1])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    ref = np.mean([skm.roc_auc_score(yc == c, p[:, c]) for c in (0, 1)])
    assert ref == pytest.approx(0.8125)
    assert fm.get("auc")(yc, p, "multiclass") == pytest.approx(ref)


def test_metric_regression_and_errors():
    rng = np.random.default_rng(59)
    for _ in range(N_CASES):
        n, d = int(rng.integers(1, 30)), int(rng.integers(1, 4))
        y, s = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        sw = None if rng.random() < 0.5 else rng.uniform(0.1, 2.0, n)
        if d == 1 and rng.random() < 0.5:
            y = y.ravel()
        mse = fm.get("mse")(y, s, "regression", sample_weight=sw)
        mae = fm.get("mae")(y, s, "regression", sample_weight=sw)
        assert type(mse) is float
        assert mse == pytest.approx(skm.mean_squared_error(y.reshape(n, d), s, sample_weight=sw))
        assert mae == pytest.approx(skm.mean_absolute_error(y.reshape(n, d), s, sample_weight=sw))
    # mse on classification tasks: one-hot for multiclass labels
    assert fm.get("mse")([0, 2], [[1.0, 0, 0], [0, 0.5, 0.5]], "multiclass") == pytest.approx(
        (0 + (0.25 + 0.25) / 3) / 2)
    assert fm.get("mae")([0, 1], [0.25, 0.5], "binary") == pytest.approx(0.375)

    for name in ["accuracy", "precision", "recall", "specificity", "f1", "auc"]:
        with pytest.raises(ValueError, match=f"'{name}' is not defined for task 'regression'"):
            fm.get(name)([0.5, 1.2], [0.4, 1.0], "regression")
    fm.get("accuracy").check_task("multilabel")
    fm.get("mse").check_task("regression")
    with pytest.raises(ValueError, match="'f1' is not defined for task 'regression'"):
        fm.get("f1").check_task("regression")
    with pytest.raises(ValueError, match="task must be one of"):
        fm.get("auc").check_task("clustering")
    with pytest.raises(ValueError, match="task must be one of"):
        fm.get("accuracy")([0, 1], [0.2, 0.6], "ranking")
    with pytest.raises(ValueError, match="only 0/1"):
        fm.get("accuracy")([0, 2], [0.2, 0.6], "binary")
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\)"):
        fm.get("accuracy")([0, 3], np.full((2, 3), 1 / 3), "multiclass")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fm.get("accuracy")([0, 1, 1], [0.2, 0.6], "binary")
    with pytest.raises(ValueError, match="y_score contains NaN"):
        fm.get("auc")([0, 1], [0.2, np.nan], "binary")
    with pytest.raises(ValueError, match="average='binary' is only valid"):
        fm.Precision(average="binary")([0, 1, 2], np.eye(3), "multiclass")
    with pytest.raises(ValueError, match="average=None"):
        fm.Precision(average=None)
    with pytest.raises(ValueError, match="average must be one of"):
        fm.Recall(average="mean")
    with pytest.raises(ValueError, match="must both have shape"):
        fm.get("f1")(np.eye(3), np.ones((3, 2)) / 2, "multilabel")


def test_metric_multiclass_one_hot_equals_int_labels():
    rng = np.random.default_rng(61)
    y = rng.integers(0, 4, 30)
    s = rng.random((30, 4))
    for name in ["accuracy", "precision", "recall", "f1", "specificity", "auc", "mse"]:
        m = fm.get(name)
        assert m(y, s, "multiclass") == pytest.approx(m(np.eye(4)[y], s, "multiclass"))


def test_public_names_keep_their_fastnet_metrics_path_and_warnings_point_at_the_caller():
    """The function API lives in fastnet/_metric_functions.py but is documented,
    pickled and saved as fastnet.metrics.<name>; warnings raised inside either
    module are attributed to the user's line, not to fastnet's."""
    import pickle

    for name in fm.__all__:
        obj = getattr(fm, name)
        assert obj.__module__ == "fastnet.metrics", name
        assert pickle.loads(pickle.dumps(obj)) is obj
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fm.precision_score([0, 0, 1], [0, 0, 0]) == 0.0              # function API
        assert math.isnan(fm.AUC()([1, 1, 1], [0.2, 0.4, 0.9], "binary"))  # Metric object
    assert [w.category for w in caught] == [fm.UndefinedMetricWarning] * 2
    assert {w.filename for w in caught} == {__file__}
