"""Functions run in worker processes by tests/test_fork.py (importable by name in
'spawn' and 'forkserver' workers, which import the test's sys.path afresh)."""
import numpy as np


def data(n=300, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.abs(X[:, :k]).argmax(axis=1)).astype(np.int64)
    return X, y


def fit_predict(args):
    """Build, fit and predict a small model; returns (weights, predictions,
    thread count used) as plain arrays."""
    backend, seed = args
    import fastnet
    X, y = data(seed=seed)
    model = fastnet.Sequential([fastnet.Dense(64, "relu"), fastnet.Dropout(0.1), fastnet.Dense(3)],
                               backend=backend, seed=seed)
    model.compile(fastnet.Adam(lr=1e-2), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    return model.get_weights(), model.predict(X), fastnet.get_num_threads()
