"""The implementations the benchmarks compare (part of ``fnbench``, which
re-exports it): one epoch of a workload, and predict, per impl: fastnet's
backends and the optional peers (a hand-written NumPy loop, PyTorch, JAX,
scikit-learn)."""
import math
import time

import numpy as np

from fnbench_cases import _fastnet_model, glorot, layer_pairs
from fnbench_env import BACKENDS


# ---------------------------------------------------------------------------
# trainers: one epoch of a workload per impl
# ---------------------------------------------------------------------------
class Trainer:
    """``epoch()`` trains one epoch over (X, y); ``warmup()`` runs whatever
    one-time work the impl needs (JIT compile, allocation) on a small slice;
    ``predict(X)`` returns class scores; ``info`` holds extra facts
    (e.g. JAX's compile time)."""

    name = "?"

    def __init__(self, spec, X, y, threads, seed=0):
        self.spec, self.X, self.y, self.threads, self.seed = spec, X, y, threads, seed
        self.info = {}

    def warmup(self):
        pass

    def epoch(self):
        raise NotImplementedError

    def predict(self, X):
        raise NotImplementedError

    def accuracy(self, X, y):
        return float((np.argmax(self.predict(X), axis=1) == y).mean())




class FastnetTrainer(Trainer):
    def __init__(self, backend, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        import fastnet
        self.name = backend
        self.backend = backend
        fastnet.set_num_threads(threads)
        self.model = _fastnet_model(spec.sizes, spec.hidden_act, backend, seed)
        opt = fastnet.SGD(lr=spec.lr) if spec.optimizer == "sgd" else fastnet.Adam(lr=spec.lr)
        self.model.compile(optimizer=opt, loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))

    def warmup(self):
        k = min(self.X.shape[0], 4 * self.spec.batch + 3)  # full batches and a partial one
        t0 = time.perf_counter()
        self.model.fit(self.X[:k], self.y[:k], epochs=1, batch_size=self.spec.batch, verbose=0)
        self.info["first call s"] = time.perf_counter() - t0

    def epoch(self):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.spec.batch, verbose=0)

    def predict(self, X):
        return self.model.predict(X)


def _np_act(name):
    if name == "sigmoid":
        def f(z):
            with np.errstate(over="ignore"):
                np.negative(z, out=z)
                np.exp(z, out=z)
                z += 1
                np.reciprocal(z, out=z)
            return z

        def g(a, d):  # d *= a (1 - a)
            d *= a
            d *= 1 - a
            return d
    elif name == "relu":
        def f(z):
            np.maximum(z, 0, out=z)
            return z

        def g(a, d):
            d *= a > 0
            return d
    else:
        raise ValueError(name)
    return f, g


class NumpyLoopTrainer(Trainer):
    """What a user would write by hand in NumPy: per batch, forward, softmax +
    cross-entropy, backward and the update (SGD, or Adam with torch's rules),
    in-place where it is easy."""
    name = "numpy-loop"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        rng = np.random.default_rng(seed)
        self.W = [glorot(rng, i, o) for i, o in layer_pairs(spec.sizes)]
        self.b = [np.zeros(o, np.float32) for _, o in layer_pairs(spec.sizes)]
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.act, self.dact = _np_act(spec.hidden_act)
        self.rng = np.random.default_rng(seed + 1)

    def _forward(self, x):
        acts = [x]
        a = x
        L = len(self.W)
        for l in range(L):
            z = a @ self.W[l]
            z += self.b[l]
            a = self.act(z) if l < L - 1 else z
            acts.append(a)
        return acts

    def _step(self, x, yb):
        n = x.shape[0]
        acts = self._forward(x)
        z = acts[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[np.arange(n), yb] -= 1
        z *= 1.0 / n
        d = z
        L = len(self.W)
        gW, gb = [None] * L, [None] * L
        for l in range(L - 1, -1, -1):
            gW[l] = acts[l].T @ d
            gb[l] = d.sum(axis=0)
            if l > 0:
                d = self.dact(acts[l], d @ self.W[l].T)
        grads = gW + gb
        if self.spec.optimizer == "sgd":
            lr = np.float32(self.spec.lr)
            for p, g in zip(self.params, grads):
                g *= lr
                p -= g
        else:
            self.t += 1
            lr, b1, b2, eps = self.spec.lr, 0.9, 0.999, 1e-8
            step = np.float32(lr / (1 - b1 ** self.t))
            bc2 = np.float32(math.sqrt(1 - b2 ** self.t))
            for p, g, m, v in zip(self.params, grads, self.m, self.v):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                g *= g
                g *= 1 - b2
                v += g
                denom = np.sqrt(v)
                denom /= bc2
                denom += eps
                np.divide(m, denom, out=denom)
                denom *= step
                p -= denom

    def _epoch(self, X, y):
        bs = self.spec.batch
        perm = self.rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], bs):
            idx = perm[s:s + bs]
            self._step(X[idx], y[idx])

    def warmup(self):
        k = min(self.X.shape[0], 4 * self.spec.batch + 3)
        self._epoch(self.X[:k], self.y[:k])

    def epoch(self):
        self._epoch(self.X, self.y)

    def predict(self, X):
        return self._forward(np.ascontiguousarray(X, dtype=np.float32))[-1]


class TorchTrainer(Trainer):
    """PyTorch eager, CPU: nn.Sequential, F.cross_entropy, torch.optim SGD/Adam
    (default implementation), one randperm per epoch, rows gathered by index."""
    name = "torch"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.model = torch_mlp(spec.sizes, spec.hidden_act)
        params = self.model.parameters()
        self.opt = torch.optim.SGD(params, lr=spec.lr) if spec.optimizer == "sgd" \
            else torch.optim.Adam(params, lr=spec.lr)
        self.Xt = torch.from_numpy(X)
        self.yt = torch.from_numpy(y)
        self.gen = torch.Generator().manual_seed(seed)

    def _epoch(self, n):
        torch = self.torch
        F = torch.nn.functional
        bs = self.spec.batch
        perm = torch.randperm(n, generator=self.gen)
        model, opt, Xt, yt = self.model, self.opt, self.Xt, self.yt
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    def warmup(self):
        self._epoch(min(self.X.shape[0], 4 * self.spec.batch + 3))

    def epoch(self):
        self._epoch(self.X.shape[0])

    def predict(self, X):
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()


def torch_mlp(sizes, hidden_act, softmax=False):
    import torch
    nn = torch.nn
    layers = []
    pairs = layer_pairs(sizes)
    for l, (i, o) in enumerate(pairs):
        layers.append(nn.Linear(i, o))
        if l < len(pairs) - 1:
            layers.append(nn.Sigmoid() if hidden_act == "sigmoid" else nn.ReLU())
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


def _jax_forward(jnp, jax, hidden_act):
    act = jax.nn.sigmoid if hidden_act == "sigmoid" else jax.nn.relu

    def forward(params, x):
        a = x
        for W, b in params[:-1]:
            a = act(a @ W + b)
        W, b = params[-1]
        return a @ W + b
    return forward


class JaxTrainer(Trainer):
    """JAX on CPU: the whole epoch is one jitted ``lax.scan`` over the batches
    (rows gathered by index inside the scan); the last partial batch, if any,
    is one more jitted step.  SGD and Adam (torch's rules) written out.  The
    compile time (lower + compile of both functions) is in ``info``."""
    name = "jax"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        rng = np.random.default_rng(seed)
        self.params = [(jnp.asarray(glorot(rng, i, o)), jnp.zeros(o, jnp.float32))
                       for i, o in layer_pairs(spec.sizes)]
        zeros = jax.tree_util.tree_map(jnp.zeros_like, self.params)
        self.opt_state = (zeros, zeros, jnp.zeros((), jnp.int32))
        self.Xd = jax.device_put(X)
        self.yd = jax.device_put(y.astype(np.int32))
        self.rng = np.random.default_rng(seed + 1)
        forward = _jax_forward(jnp, jax, spec.hidden_act)
        self.forward_jit = jax.jit(forward)
        lr, sgd = spec.lr, spec.optimizer == "sgd"
        b1, b2, eps = 0.9, 0.999, 1e-8

        def loss_fn(params, xb, yb):
            z = forward(params, xb)
            logp = jax.nn.log_softmax(z)
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        grad_fn = jax.grad(loss_fn)

        def step(params, opt_state, xb, yb):
            g = grad_fn(params, xb, yb)
            if sgd:
                return jax.tree_util.tree_map(lambda p, gg: p - lr * gg, params, g), opt_state
            m, v, t = opt_state
            t = t + 1
            tf = t.astype(jnp.float32)
            m = jax.tree_util.tree_map(lambda mm, gg: b1 * mm + (1 - b1) * gg, m, g)
            v = jax.tree_util.tree_map(lambda vv, gg: b2 * vv + (1 - b2) * gg * gg, v, g)
            step_size = lr / (1 - b1 ** tf)
            bc2 = jnp.sqrt(1 - b2 ** tf)
            params = jax.tree_util.tree_map(
                lambda p, mm, vv: p - step_size * mm / (jnp.sqrt(vv) / bc2 + eps), params, m, v)
            return params, (m, v, t)

        def epoch_fn(params, opt_state, X, y, idx):
            def body(carry, ib):
                p, o = carry
                return step(p, o, X[ib], y[ib]), None
            (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), idx)
            return params, opt_state

        def rem_fn(params, opt_state, X, y, ib):
            return step(params, opt_state, X[ib], y[ib])

        self._epoch_fn, self._rem_fn = jax.jit(epoch_fn), jax.jit(rem_fn)
        self._compiled = {}
        self._compile(X.shape[0])

    def _compile(self, n):
        """lower + compile for an epoch of n rows (timed once per n)."""
        if n in self._compiled:
            return self._compiled[n]
        jax, jnp = self.jax, self.jnp
        bs = self.spec.batch
        full, rem = divmod(n, bs)
        t0 = time.perf_counter()
        ep = self._epoch_fn.lower(self.params, self.opt_state, self.Xd, self.yd,
                                  jax.ShapeDtypeStruct((full, bs), jnp.int32)).compile() if full else None
        rf = self._rem_fn.lower(self.params, self.opt_state, self.Xd, self.yd,
                                jax.ShapeDtypeStruct((rem,), jnp.int32)).compile() if rem else None
        dt = time.perf_counter() - t0
        if n == self.X.shape[0]:
            self.info["compile s"] = dt
        self._compiled[n] = (ep, rf)
        return ep, rf

    def _epoch(self, n):
        bs = self.spec.batch
        full, rem = divmod(n, bs)
        ep, rf = self._compile(n)
        perm = self.rng.permutation(n).astype(np.int32)
        params, st = self.params, self.opt_state
        if full:
            params, st = ep(params, st, self.Xd, self.yd, perm[:full * bs].reshape(full, bs))
        if rem:
            params, st = rf(params, st, self.Xd, self.yd, perm[full * bs:])
        self.jax.block_until_ready(params)
        self.params, self.opt_state = params, st

    def warmup(self):
        # the full-epoch executable is compiled in __init__ (timed); run a
        # small epoch so the first timed round does not pay first-run costs
        self._epoch(min(self.X.shape[0], 4 * self.spec.batch + 3))

    def epoch(self):
        self._epoch(self.X.shape[0])

    def predict(self, X):
        return np.asarray(self.forward_jit(self.params, self.jnp.asarray(X, dtype=self.jnp.float32)))


class SklearnTrainer(Trainer):
    """scikit-learn MLPClassifier: one ``partial_fit`` = one epoch over the data
    with the workload's batch size, solver (sgd without momentum / adam),
    learning rate, activation; no L2 penalty (alpha=0)."""
    name = "sklearn"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        from sklearn.neural_network import MLPClassifier
        kw = dict(hidden_layer_sizes=tuple(spec.sizes[1:-1]),
                  activation="logistic" if spec.hidden_act == "sigmoid" else "relu",
                  solver=spec.optimizer, learning_rate_init=spec.lr, batch_size=spec.batch,
                  alpha=0.0, shuffle=True, random_state=seed)
        if spec.optimizer == "sgd":
            kw.update(momentum=0.0, nesterovs_momentum=False, learning_rate="constant")
        else:
            kw.update(beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        self.clf = MLPClassifier(**kw)
        self.classes = np.arange(spec.sizes[-1])

    def warmup(self):
        k = min(self.X.shape[0], 4 * self.spec.batch + 3)
        self.clf.partial_fit(self.X[:k], self.y[:k], classes=self.classes)

    def epoch(self):
        self.clf.partial_fit(self.X, self.y, classes=self.classes)

    def predict(self, X):
        return self.clf.predict_proba(X)


def make_trainer(impl, spec, X, y, threads, seed=0):
    if impl in BACKENDS:
        return FastnetTrainer(impl, spec, X, y, threads, seed)
    cls = {"numpy-loop": NumpyLoopTrainer, "torch": TorchTrainer, "jax": JaxTrainer,
           "sklearn": SklearnTrainer}[impl]
    return cls(spec, X, y, threads, seed)

# ---------------------------------------------------------------------------
# predict: returns {"batch1": fn(x), "batchN": fn(x)} style callables
# ---------------------------------------------------------------------------
def make_predictor(impl, sizes, threads, seed=0):
    """A function x -> class probabilities for the predict network (relu hidden
    layers, softmax output).  fastnet backends: ``model.predict`` (the user
    API: input checks + one ``forward`` call); "<backend>:kernel": the
    backend's ``forward`` kernel alone on preallocated buffers (the contract's
    function without its argument validator, ``forward.unchecked``: what
    predict itself calls)."""
    kernel_only = impl.endswith(":kernel")
    name = impl[:-len(":kernel")] if kernel_only else impl
    if name in BACKENDS:
        import fastnet
        fastnet.set_num_threads(threads)
        model = _fastnet_model(sizes, "relu", name, seed, out_act="softmax")
        model.build(sizes[0])
        if not kernel_only:
            return model.predict
        from fastnet.backends import _api
        be = model._backend
        fwd = getattr(be.forward, "unchecked", be.forward)
        bufs = {}

        def run(x):
            n = x.shape[0]
            if n not in bufs:
                bufs[n] = (np.empty(_api.forward_workspace_size(model._layer_table, n), dtype=np.float32),
                           np.empty((n, sizes[-1]), dtype=np.float32))
            work, out = bufs[n]
            fwd(x, model._layer_table, model._params, work, out, threads)
            return out
        return run
    if name == "numpy-loop":
        rng = np.random.default_rng(seed)
        W = [glorot(rng, i, o) for i, o in layer_pairs(sizes)]
        b = [np.zeros(o, np.float32) for _, o in layer_pairs(sizes)]

        def run(x):
            a = x
            for l in range(len(W)):
                a = a @ W[l]
                a += b[l]
                if l < len(W) - 1:
                    np.maximum(a, 0, out=a)
            a -= a.max(axis=1, keepdims=True)
            np.exp(a, out=a)
            a /= a.sum(axis=1, keepdims=True)
            return a
        return run
    if name == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        model = torch_mlp(sizes, "relu", softmax=True).eval()

        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
        return run
    if name == "jax":
        import jax
        import jax.numpy as jnp
        rng = np.random.default_rng(seed)
        params = [(jnp.asarray(glorot(rng, i, o)), jnp.zeros(o, jnp.float32)) for i, o in layer_pairs(sizes)]
        fwd = _jax_forward(jnp, jax, "relu")
        f = jax.jit(lambda p, x: jax.nn.softmax(fwd(p, x), axis=1))

        def run(x):
            return np.asarray(f(params, x))
        return run
    raise ValueError("unknown predict impl %r" % impl)
