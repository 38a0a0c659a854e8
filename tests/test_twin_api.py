"""The compiled twins expose the same API: for every module that has both a
Cython build (kernels/cython/X.pyx) and a numba one (kernels/numba/X.py), the
public callables defined there (names without a leading "_") are the same
names, with the same parameter names in the same order (inspect.signature:
the Cython modules are compiled with binding=True, so their def functions
carry signatures).

Where the twins legitimately differ, the difference is listed in EXCEPTIONS
below, the one place for them, with its reason.  The test fails on a
difference that is not listed and on a listed exception that no longer holds,
so the list stays true.
"""
import importlib
import inspect
import os
import types

import pytest

from conftest import BACKENDS

pytestmark = pytest.mark.skipif(not {"numba", "cython"} <= set(BACKENDS),
                                reason="needs both compiled twins")

KERNELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")

#: (module, public name) -> why it is on one side only.  Nothing else may differ.
EXCEPTIONS = {
    ("network", "workspace_offsets"):
        "Cython only: exposes its workspace layout so a test checks it against "
        "_api.workspace_layout; numba's layout is not exported",
    ("network", "train_variant"):
        "numba only: compiles train_batches specialised to a network's feature "
        "flags; the Cython step tests the features at run time",
    ("network", "forward_variant"):
        "numba only: forward specialised to the feature flags, as train_variant",
    ("reduce", "finite"):
        "numba only: the predictor's finiteness check as a serial function returning "
        "the flag (a call of the parallel all_finite costs microseconds of its own); "
        "the Cython predictor checks inside network.forward_if_finite",
    ("network", "forward_if_finite"):
        "Cython only: Model.predict's fast path in one call (the finiteness check, "
        "then forward); numba's predictor calls all_finite and the forward variant "
        "(one more compiled entry point would add to its first-use compile time)",
    ("matmul", "isa"):
        "Cython only: reports which of its C micro-kernels (SSE2 / AVX2 / AVX-512) "
        "runs; numba's is compiled by LLVM for the host CPU, nothing to choose",
    ("matmul", "select_isa"):
        "Cython only: caps the micro-kernel's instruction set (FASTNET_MM_ISA)",
    ("matmul", "nt_ws"):
        "numba only: matmul_nt with the caller's scratch for B^T (train_batches "
        "reuses one buffer); Cython's is the cdef matmul_nt_c's Bt argument, not exported",
    ("layers", "nt_sparse_ws"):
        "numba only: matmul_nt_sparse with the caller's scratch; Cython's is the "
        "cdef matmul_nt_sparse_c's Bt argument",
    ("layers", "tn_sparse_ws"):
        "numba only: matmul_tn_sparse with the caller's scratch; Cython's is the "
        "cdef matmul_tn_sparse_c's T argument",
    ("reduce", "check_layers"):
        "Cython only: validates the layer records in Python before the nogil kernels; "
        "numba checks inside its jitted step (network._check_layers)",
    ("_generated_elementwise", "isa"):
        "Cython only: reports the optimizer update's instruction set",
    ("_generated_elementwise", "select_isa"):
        "Cython only: caps the optimizer update's instruction set (FASTNET_EW_ISA)",
    ("_generated_elementwise", "fmin"):
        "numba only: C99 fmin as a jitted helper for the rendered activation "
        "formulas; Cython takes fmin from libc.math",
    ("_generated_elementwise", "fmax"):
        "numba only: C99 fmax, as fmin",
}


def twin_modules():
    """Module names with both a kernels/cython/X.pyx and a kernels/numba/X.py."""
    cy = {f[:-4] for f in os.listdir(os.path.join(KERNELS, "cython")) if f.endswith(".pyx")}
    nb = {f[:-3] for f in os.listdir(os.path.join(KERNELS, "numba")) if f.endswith(".py")}
    return sorted(cy & nb)


def public_api(module):
    """{name: [parameter names]} of the public callables defined in ``module``
    (not those it imports from elsewhere)."""
    api = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or isinstance(obj, type) or not callable(obj):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        api[name] = list(inspect.signature(obj).parameters)
    return api


def differences(mod, cy_api, nb_api):
    """{(mod, name): what differs} between the two twins' APIs."""
    diff = {}
    for name in sorted(set(cy_api) | set(nb_api)):
        if name not in nb_api:
            diff[(mod, name)] = "in cython only"
        elif name not in cy_api:
            diff[(mod, name)] = "in numba only"
        elif cy_api[name] != nb_api[name]:
            diff[(mod, name)] = "parameters differ: cython %s, numba %s" % (cy_api[name], nb_api[name])
    return diff


def test_the_twin_modules():
    assert twin_modules() == ["_generated_elementwise", "layers", "losses", "matmul",
                              "network", "reduce"]


def test_every_exception_names_a_twin_module_and_a_reason():
    for (mod, name), why in EXCEPTIONS.items():
        assert mod in twin_modules(), (mod, name)
        assert isinstance(why, str) and why.strip(), (mod, name)


@pytest.mark.parametrize("mod", twin_modules())
def test_twins_have_the_same_public_functions_and_signatures(mod):
    cy_api = public_api(importlib.import_module("fastnet._kernels.cython." + mod))
    nb_api = public_api(importlib.import_module("fastnet._kernels.numba." + mod))
    shared = set(cy_api) & set(nb_api)
    assert shared, "%s: no public function in common (the collection found nothing?)" % mod
    found = differences(mod, cy_api, nb_api)
    listed = {key for key in EXCEPTIONS if key[0] == mod}
    unlisted = {key: what for key, what in found.items() if key not in listed}
    stale = sorted(key for key in listed if key not in found)
    assert not unlisted, "twins differ (fix the twin, or list it in EXCEPTIONS with a reason): %s" % unlisted
    assert not stale, "EXCEPTIONS lists differences that no longer exist: %s" % stale


def test_differences_sees_a_renamed_parameter_a_reordering_and_a_missing_function():
    """The comparison itself can fail: fake twins with each kind of drift."""
    def make(name, src):
        mod = types.ModuleType(name)
        exec(src, mod.__dict__)
        return public_api(mod)
    cy = make("cy", "def f(A, B, n_threads): pass\ndef g(x, y): pass\ndef h(): pass\n"
                    "def _private(a): pass\nfrom os.path import join\n")
    nb = make("nb", "def f(A, C, n_threads): pass\ndef g(y, x): pass\ndef _private(b): pass\n")
    assert set(cy) == {"f", "g", "h"}          # private and imported names are not the API
    assert differences("m", cy, nb) == {
        ("m", "f"): "parameters differ: cython ['A', 'B', 'n_threads'], numba ['A', 'C', 'n_threads']",
        ("m", "g"): "parameters differ: cython ['x', 'y'], numba ['y', 'x']",
        ("m", "h"): "in cython only",
    }
    assert differences("m", cy, cy) == {}
