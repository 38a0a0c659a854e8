"""kernels/_codegen.py: the generators the elementwise templates render the
twins' loops with (golden C and Python for toy table entries, pruning of the
specialised flags, refusal of what they cannot translate), and kernels/render.py."""
import os
import re
import textwrap

import numpy as np
import pytest

from fastnet._kernels import _codegen as ct
from fastnet._kernels import defs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOY_OPT = dict(name="toy", slots=["m", "v"], scalars=["c = lr * 2.0"],
               element=["if maximize != 0.0:",
                        "    g = -g",
                        "m = beta1 * m + g",
                        "p = p - c * m"])
TOY_HYPER = {"lr": 0, "beta1": 1, "maximize": 2, "eps": 3}


def _function(src, name):
    """The text of C function ``name`` in ``src`` (up to its closing brace)."""
    start = src.index(" %s(" % name)
    return src[start:src.index("\n}", start)]


def test_opt_c_orders_scalars_and_prunes_each_flag_value():
    sc_names, hyper, src = ct.opt_c(TOY_OPT, TOY_HYPER, (), ct.SPECIALIZE_C, ct.ISAS, ct.CTYPES)
    # the hyper-parameters the formulas use (HYPER's order; eps is unused), then the scalars
    assert sc_names == ["lr", "beta1", "maximize", "c"]
    assert hyper == [("lr", 0), ("beta1", 1), ("maximize", 2)]
    # one function per dtype and instruction set; off x86 the vector names alias the baseline
    for dt in ("f32", "f64"):
        for isa in ("base", "avx2", "avx512"):
            assert "static void fn_opt_toy_%s_%s(" % (dt, isa) in src
        assert "#define fn_opt_toy_%s_avx2 fn_opt_toy_%s_base" % (dt, dt) in src
    f64 = _function(src, "fn_opt_toy_f64_base")
    on, off = f64.split("} else {  /* sc[2] == 0.0 */")
    assert "if (sc[2] != 0.0) {" in on
    # maximize tested once, outside the loop: the negation only in its own loop
    assert "g = (-g);" in on and "g = (-g);" not in off
    for body in (on, off):
        assert "const double beta1 = sc[1];" in body and "const double c = sc[3];" in body
        assert "const double lr" not in body          # only read by the scalar c
        assert "m = ((beta1 * m) + g);" in body
        assert "p = (p - (c * m));" in body
        assert "s0[e] = (double) m;" in body
        assert "s1[" not in body                      # slot v is neither read nor written
    # float32: element arithmetic in float, hyper-parameters rounded to float once
    f32 = _function(src, "fn_opt_toy_f32_base")
    assert "m = ((((float) beta1) * m) + g);" in f32
    assert "float p = params[e];" in f32


def test_opt_c_takes_step_inputs_after_the_hyper_parameters():
    opt = dict(TOY_OPT, element=["g = g * gs", "p = p - c * g"])
    sc_names, hyper, src = ct.opt_c(opt, TOY_HYPER, ("gs", "unused"), ct.SPECIALIZE_C, ct.ISAS,
                                    ct.CTYPES)
    # an argument scalar is in sc (after the hyper-parameters) but read from no hyper slot
    assert sc_names == ["lr", "gs", "c"] and hyper == [("lr", 0)]
    assert "const double gs = sc[1];" in _function(src, "fn_opt_toy_f64_base")


def test_opt_c_specialises_only_the_flags_its_formulas_test():
    src = ct.opt_c(dict(TOY_OPT, element=["p = p - c * g"]), TOY_HYPER, (),
                   ct.SPECIALIZE_C, ct.ISAS, ct.CTYPES)[2]
    body = _function(src, "fn_opt_toy_f64_base")
    assert "if (" not in body and body.count("for (e = 0; e < n; e++)") == 1


@pytest.mark.parametrize("line", ["p = p ** 2", "p = g[0]", "p += g"])
def test_opt_c_refuses_what_it_cannot_translate(line):
    with pytest.raises(ValueError, match="opt_c: cannot translate"):
        ct.opt_c(dict(TOY_OPT, element=[line]), TOY_HYPER, (), ct.SPECIALIZE_C, ct.ISAS, ct.CTYPES)


def test_act_c_translates_formulas_and_skips_rowwise_activations():
    sig = "1.0 / (1.0 + exp(-z)) if z >= 0 else exp(z) / (1.0 + exp(z))"
    acts = [dict(name="toy", forward="z * exp(-z) if z > 0.0 else 0.0", backward="1.0 - a * a"),
            dict(name="sig2", forward="2.0 * (%s)" % sig, backward="a"),
            dict(name="byrow", rowwise=True, forward="z", backward="a")]
    src = ct.act_c(acts, ct.ISAS, ct.CTYPES)
    assert "byrow" not in src
    fwd = _function(src, "fn_fwd_toy_f64_base")
    assert "A[j] = (double) (((z > 0.0) ? (z * fn_exp((-z))) : 0.0));" in fwd
    assert "dZ[e] = (float) (dA[e] * ((1.0 - (a * a))));" in _function(src, "fn_bwd_toy_f32_base")
    # the stable sigmoid's two branches become the one-exponential fn_sigmoid
    assert "(2.0 * fn_sigmoid(z))" in _function(src, "fn_fwd_sig2_f64_avx2")
    names = re.findall(r"static void (fn_\w+)\(", src)
    assert len(names) == 2 * 2 * 2 * 3 and len(set(names)) == len(names)


def test_act_c_refuses_what_it_cannot_translate():
    with pytest.raises(ValueError, match="act_c: cannot translate"):
        ct.act_c([dict(name="pow", forward="z ** 3", backward="a")], ct.ISAS, ct.CTYPES)


def test_every_table_entry_translates():
    for o in defs.OPTIMIZERS:
        if o["element"]:
            assert "fn_opt_%s_f32_base" % o["name"] in ct.opt_c(
                o, defs.HYPER, defs.STEP_INPUTS, ct.SPECIALIZE_C, ct.ISAS, ct.CTYPES)[2]
    src = ct.act_c(defs.ACTIVATIONS, ct.ISAS, ct.CTYPES)
    for a in defs.ACTIVATIONS:
        assert ("fn_fwd_%s_f64_base" % a["name"] in src) == (not a.get("rowwise"))


def test_act_py_evaluates_what_act_c_does():
    sig = "1.0 / (1.0 + exp(-z)) if z >= 0 else exp(z) / (1.0 + exp(z))"
    assert ct.act_py("z * exp(-z) if z > 0.0 else expm1(z)") == "z * fn_exp(-z) if z > 0.0 else expm1(z)"
    assert ct.act_py("2.0 * (%s) - 1.0" % sig) == "2.0 * fn_sigmoid(z) - 1.0"
    assert ct.act_py(sig) == "fn_sigmoid(z)"


def test_typed_element_hoists_scalar_subexpressions_once():
    items = sorted(TOY_HYPER.items(), key=lambda kv: kv[1])
    opt = dict(TOY_OPT, scalars=["c = lr * 2.0"],
               element=["if maximize != 0.0:",
                        "    g = -g",
                        "m = beta1 * m + (1.0 - beta1) * g",
                        "p = p - c * m / (1.0 - beta1)"])
    prologue, element, n = ct.typed_element(opt, items)
    assert n == 3
    assert prologue == ["_s[0] = beta1", "_s[1] = 1.0 - beta1", "_s[2] = c"]
    # the test on a flag alone stays as written (float64); (1.0 - beta1) is hoisted once
    assert element == ["if maximize != 0.0:", "    g = -g",
                       "m = _s0 * m + _s1 * g", "p = p - _s2 * m / _s1"]
    assert ct.hyper_used(opt, items) == [("lr", 0), ("beta1", 1), ("maximize", 2)]
    assert ct.uses("beta1 * m", "m") and not ct.uses("beta1 * mm", "m")


def test_indent():
    assert ct.indent(["a = 1", "b = 2"], 4) == "    a = 1\n    b = 2"


def test_render_gives_each_template_its_own_namespace():
    """Tempita runs {{py:}} blocks in the dict it is given: the Cython template
    assigns a list to ``hyper_used``, which must not reach the numba template."""
    import importlib.util
    path = os.path.join(ROOT, "kernels", "render.py")
    if not os.path.exists(path):
        pytest.skip("kernels/render.py is not in this checkout (installed package)")
    pytest.importorskip("Cython.Tempita")
    spec = importlib.util.spec_from_file_location("_fastnet_render_test", path)
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    ns = render.namespace()
    before = dict(ns)
    for tp in ("elementwise.pyx.tp", "elementwise.py.tp"):
        out, text = render.render(os.path.join(ROOT, "kernels", "templates", tp), ns)
        assert text.startswith("# GENERATED by kernels/render.py")
    assert ns == before


def test_opt_loop_py_prunes_the_flags_into_a_common_case_loop():
    element = ["g = g * _s0",
               "if maximize != 0.0:",
               "    g = -g",
               "if momentum != 0.0:",
               "    if first != 0.0:",
               "        buf = g",
               "    else:",
               "        buf = _s1 * buf + g",
               "    g = buf",
               "if g > _s2:",
               "    g = _s2",
               "p = p - _s3 * g"]
    lines = ct.opt_loop_py(element, ["buf", "acc"], ("maximize", "momentum", "amsgrad"))
    src = "\n".join(lines)
    # the test is taken once, outside the loop, on the flags the lines test (not amsgrad)
    assert lines[0] == "if maximize == 0.0 and momentum == 0.0:"
    fast = src.split("\nelse:\n")[0]
    general = src.split("\nelse:\n")[1]
    # the common case reads and writes no slot its pruned body does not use; a test
    # on something other than a flag stays
    assert "buf" not in fast and "acc" not in fast and "if g > _s2:" in fast
    assert "maximize" not in fast.split("\n", 1)[1]
    # the general loop is the lines as written, every slot read and written
    for line in element:
        assert "        " + line in general or "    " + line in general
    assert "buf = s_buf[_i]" in general and "s_acc[_i] = acc" in general
    # both loops compute the same values where the flags are 0, and the general
    # one where they are not
    pt0, gt0 = np.array([1.0, -2.0, 3.0]), np.array([0.5, 4.0, -1.0])
    for maximize, momentum in [(0.0, 0.0), (1.0, 0.0), (0.0, 0.9), (1.0, 0.9)]:
        env = dict(pt=pt0.copy(), gt=gt0, s_buf=np.ones(3), s_acc=np.zeros(3), maximize=maximize,
                   momentum=momentum, first=0.0, _s0=2.0, _s1=0.5, _s2=3.0, _s3=0.1)
        exec(src, {}, env)
        ref = dict(pt=pt0.copy(), gt=gt0, s_buf=np.ones(3), s_acc=np.zeros(3), maximize=maximize,
                   momentum=momentum, first=0.0, _s0=2.0, _s1=0.5, _s2=3.0, _s3=0.1)
        exec(textwrap.dedent(general), {}, ref)
        assert np.array_equal(env["pt"], ref["pt"]) and np.array_equal(env["s_buf"], ref["s_buf"])
    # no flag tested: the general loop alone
    assert ct.opt_loop_py(["p = p - _s0 * g"], [], ("maximize",))[0] == "for _i in range(pt.shape[0]):"
