"""fastnet.plot.history: learning-curve figures (needs matplotlib; skipped without it)."""
import sys

import numpy as np
import pytest

import fastnet
import fastnet.plot

HIST = {"loss": [1.0, 0.6, 0.4, 0.3], "accuracy": [0.5, 0.7, 0.8, 0.85],
        "val_loss": [1.1, 0.7, 0.5, 0.45], "val_accuracy": [0.45, 0.65, 0.75, 0.8]}


def _mpl():
    return pytest.importorskip("matplotlib")


def _axes_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


def test_png_written_and_readable(tmp_path):
    _mpl()
    import matplotlib.image as mpimg
    from matplotlib.figure import Figure

    path = tmp_path / "curve.png"
    fig = fastnet.plot.history(HIST, path=path, title="demo")
    assert isinstance(fig, Figure)
    assert path.stat().st_size > 10_000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert _axes_titles(fig) == ["loss", "accuracy"]
    assert fig.get_suptitle() == "demo"
    # training and validation curves in each panel, with the values given
    loss_ax = fig.axes[0]
    ys = sorted(tuple(line.get_ydata()) for line in loss_ax.get_lines())
    assert ys == sorted([tuple(HIST["loss"]), tuple(HIST["val_loss"])])
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3, 4]


def test_history_object_from_fit(tmp_path):
    _mpl()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(2)], backend="numpy", seed=0)
    model.compile(optimizer=fastnet.Adam(learning_rate=0.01),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    hist = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    path = tmp_path / "fit.png"
    fig = fastnet.plot.history(hist, path=str(path))
    assert path.stat().st_size > 10_000
    assert _axes_titles(fig) == ["loss", "accuracy"]
    # the .history dict gives the same panels
    assert _axes_titles(fastnet.plot.history(hist.history)) == ["loss", "accuracy"]


def test_other_metrics_and_selection(tmp_path):
    _mpl()
    h = {"accuracy": [0.5, 0.6], "loss": [1.0, 0.9], "mse": [0.3, 0.2], "val_mse": [0.4, 0.3],
         "learning_rate": [0.1, 0.05]}
    fig = fastnet.plot.history(h)
    assert _axes_titles(fig) == ["loss", "accuracy", "mean squared error", "learning_rate"]
    fig = fastnet.plot.history(h, metrics="mse")
    assert _axes_titles(fig) == ["mean squared error"]
    assert len(fig.axes[0].get_lines()) == 2
    fig = fastnet.plot.history(h, metrics=["loss", "accuracy"])
    assert _axes_titles(fig) == ["loss", "accuracy"]
    # validation-only history (e.g. val_ keys only)
    fig = fastnet.plot.history({"val_loss": [0.5, 0.4]})
    assert len(fig.axes[0].get_lines()) == 1
    # a file name without extension is still a PNG
    path = tmp_path / "noext"
    fastnet.plot.history(h, path=path)
    with open(path, "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_missing_matplotlib(monkeypatch, tmp_path):
    # simulate an environment without matplotlib: its import fails
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"fastnet\.plot needs matplotlib: pip install 'fastnet\[plot\]'"):
        fastnet.plot.history(HIST, path=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("bad, exc, word", [
    ([1, 2, 3], TypeError, "history"),
    ("loss", TypeError, "history"),
    (None, TypeError, "history"),
    ({}, ValueError, "history"),
    ({"loss": []}, ValueError, "history"),
    ({"loss": "abc"}, TypeError, "history\\['loss'\\]"),
    ({"loss": [1.0, "x"]}, TypeError, "history\\['loss'\\]"),
    ({"loss": [[1.0, 2.0]]}, ValueError, "history\\['loss'\\]"),
    ({"loss": 3.0}, TypeError, "history\\['loss'\\]"),
    ({1: [1.0]}, TypeError, "history keys"),
])
def test_bad_history(bad, exc, word):
    with pytest.raises(exc, match=word):
        fastnet.plot.history(bad)


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"metrics": ["nope"]}, ValueError, "metrics"),
    ({"metrics": []}, TypeError, "metrics"),
    ({"metrics": [3]}, TypeError, "metrics"),
    ({"metrics": 3}, TypeError, "metrics"),
    ({"path": 3}, TypeError, "path"),
    ({"title": 3}, TypeError, "title"),
    ({"show": "yes"}, TypeError, "show"),
])
def test_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        fastnet.plot.history(HIST, **kwargs)


def test_no_pyplot_state(tmp_path):
    """Saving does not open pyplot figures (nothing to close, no display needed)."""
    _mpl()
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    fastnet.plot.history(HIST, path=tmp_path / "a.png")
    assert plt.get_fignums() == before
