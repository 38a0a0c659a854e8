"""The code generators of the elementwise twins' templates.

They turn the formula lines of ``kernels/defs.py`` into each twin's code:

* Cython (``kernels/templates/elementwise.pyx.tp``): :func:`opt_c` (one
  optimizer's update loops) and :func:`act_c` (the element-wise activations' row
  loops) translate the formulas from Python to C, specialised per dtype
  (``CTYPES``), instruction set (``ISAS``) and, for the optimizers, per value of
  the flags in ``SPECIALIZE_C``;
* numba (``kernels/templates/elementwise.py.tp``): :func:`act_py` and
  :func:`typed_element` rewrite them in Python so that numba evaluates the same
  operations as the C (:func:`hyper_used` and :func:`uses` say what they read).

``kernels/render.py`` puts ``__all__`` in the templates' namespace.  Standard
library only: ``setup.py`` loads this file (through render.py) before anything
is built or installed.
"""
import ast
import itertools
import re
import struct

__all__ = ["SPECIALIZE", "SPECIALIZE_C", "ISAS", "CTYPES", "opt_c", "act_c",
           "act_py", "typed_element", "opt_loop_py", "hyper_used", "uses", "indent"]

# defs.py's stable sigmoid: both twins evaluate it as fn_sigmoid(z) (fn_math.h,
# kernels/numba/fn_math.py), the two branches with the one exponential they need
_STABLE_SIGMOID = "1.0 / (1.0 + exp(-z)) if z >= 0 else exp(z) / (1.0 + exp(z))"


def _with_fn_sigmoid(formula):
    return formula.replace("(%s)" % _STABLE_SIGMOID, "fn_sigmoid(z)").replace(_STABLE_SIGMOID, "fn_sigmoid(z)")


def indent(lines, n):
    """``lines`` joined into one text, each indented by ``n`` spaces."""
    return "\n".join(" " * n + line for line in lines)


# ---------------------------------------------------------------------------
# Cython twin (kernels/templates/elementwise.pyx.tp)
# ---------------------------------------------------------------------------
# Flags every torch.optim rule tests first (``if maximize != 0.0:``,
# ``if weight_decay != 0.0:``).  Each optimizer loop is rendered once per
# combination of their values, with those tests constant, and the branch is
# taken outside the loop: with at most one or two loop-invariant branches left,
# gcc vectorises the loop (it does not unswitch three).  ``clipvalue`` (the clip
# lines of kernels/defs.py) is specialised too: as a runtime test it was the
# third invariant branch.  The price is 8 loops instead of 4 per optimizer (a
# larger .so, longer gcc time); the optimizer_update rows of bench/REPORT.md's
# kernel table show the speed.
SPECIALIZE = ("maximize", "weight_decay", "clipvalue")


# Flags the C element loops specialise on besides SPECIALIZE: ``amsgrad`` decides
# whether the ``vmax`` slot is read and written at all (a specialised loop only
# loads the slots its pruned body reads and stores those it assigns, so Adam
# without amsgrad streams 5 arrays instead of 7).
# ``momentum`` likewise: plain SGD (and RMSprop) without momentum neither reads
# nor writes the momentum buffer (SGD's loop streams 3 arrays instead of 5; see
# bench/REPORT.md's seed epoch).
SPECIALIZE_C = SPECIALIZE + ("amsgrad", "momentum")
ISAS = (("base", ""),
        ("avx2", '__attribute__((target("avx2,fma")))'),
        ("avx512", '__attribute__((target("avx512f,avx512vl,avx2,fma,prefer-vector-width=512")))'))
CTYPES = (("f32", "float"), ("f64", "double"))


def opt_c(o, HYPER, STEP_INPUTS, SPECIALIZE_C, ISAS, CTYPES):
    """C source of optimizer ``o``'s element loops: for each (dtype, ISA) one
    function ``fn_opt_<name>_<dt>_<isa>(sc, grads, params, s0, s1, s2, n)`` that
    tests the specialised flags once and runs the loop written for their values
    (the formula lines of kernels/defs.py translated to C, the ``if X != 0.0``
    tests of the flags pruned at render time).  ``sc`` holds the hyper-parameters
    the formulas use, then the update's argument scalars (``STEP_INPUTS``) they
    use, then the per-step scalars, in the order returned."""
    ident = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
    scalar_names = [s.split("=")[0].strip() for s in o["scalars"]]
    used = set()
    for line in o["element"] + [s.split("=", 1)[1] for s in o["scalars"]]:
        used.update(ident.findall(line))
    sc_names = [n for n in HYPER if n in used] + [n for n in STEP_INPUTS if n in used] + scalar_names
    tree = ast.parse("\n".join(o["element"])).body

    def flag_of(test):
        return _flag_test(test, SPECIALIZE_C)

    flags = []

    def find(stmts):
        for s in stmts:
            if isinstance(s, ast.If):
                f = flag_of(s.test)
                if f and f not in flags:
                    flags.append(f)
                find(s.body)
                find(s.orelse)
    find(tree)

    def prune(stmts, values):
        out = []
        for s in stmts:
            if isinstance(s, ast.If):
                f = flag_of(s.test)
                if f is not None:
                    out += prune(s.body if values[f] else s.orelse, values)
                    continue
                s = ast.If(test=s.test, body=prune(s.body, values), orelse=prune(s.orelse, values))
            out.append(s)
        return out

    binops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
    cmps = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
    # The element arithmetic runs in the array dtype, as torch.optim (and the NumPy
    # reference) do: for float32 every operation on an element is a float operation
    # (f-suffixed libm functions), while a subexpression of hyper-parameters and
    # per-step scalars alone (``1.0 - beta2``) is computed in double and rounded
    # once, as torch computes its Python-float scalars before passing them.
    ctype = {"T": "double"}
    ffuncs = {"sqrt": "sqrtf", "fmax": "fmaxf", "fmin": "fminf", "fabs": "fabsf"}

    def scalar_only(e):
        return all(n.id in sc_names for n in ast.walk(e) if isinstance(n, ast.Name))

    def cx(e, in_double=False):
        if ctype["T"] == "float" and not in_double and scalar_only(e):
            if isinstance(e, (ast.Compare, ast.BoolOp)):
                return cx(e, True)              # a test on scalars: in double
            if isinstance(e, ast.Constant):
                return repr(float(e.value)) + "f"
            return "((float) %s)" % cx(e, True)
        if isinstance(e, ast.Name):
            return e.id
        if isinstance(e, ast.Constant):
            return repr(float(e.value))
        if isinstance(e, ast.BinOp) and type(e.op) in binops:
            return "(%s %s %s)" % (cx(e.left, in_double), binops[type(e.op)], cx(e.right, in_double))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return "(-%s)" % cx(e.operand, in_double)
        if isinstance(e, ast.IfExp):
            return "(%s ? %s : %s)" % (cx(e.test, in_double), cx(e.body, in_double), cx(e.orelse, in_double))
        if isinstance(e, ast.Compare) and len(e.ops) == 1 and type(e.ops[0]) in cmps:
            return "(%s %s %s)" % (cx(e.left, in_double), cmps[type(e.ops[0])], cx(e.comparators[0], in_double))
        if isinstance(e, ast.BoolOp):
            op = " && " if isinstance(e.op, ast.And) else " || "
            return "(" + op.join(cx(v, in_double) for v in e.values) + ")"
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            name = ffuncs.get(e.func.id, e.func.id) if ctype["T"] == "float" and not in_double \
                else e.func.id
            return "%s(%s)" % (name, ", ".join(cx(a, in_double) for a in e.args))
        raise ValueError("opt_c: cannot translate %s" % ast.dump(e))

    def cs(stmts, pad):
        out = []
        for s in stmts:
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
                out.append("%s%s = %s;" % (pad, s.targets[0].id, cx(s.value)))
            elif isinstance(s, ast.If):
                out.append("%sif %s {" % (pad, cx(s.test) if cx(s.test).startswith("(") else "(%s)" % cx(s.test)))
                out += cs(s.body, pad + "    ")
                if s.orelse:
                    out.append("%s} else {" % pad)
                    out += cs(s.orelse, pad + "    ")
                out.append("%s}" % pad)
            else:
                raise ValueError("opt_c: cannot translate %s" % ast.dump(s))
        return out

    def names(stmts):
        read, written = set(), set()
        for s in stmts:
            for node in ast.walk(s):
                if isinstance(node, ast.Name):
                    (written if isinstance(node.ctx, ast.Store) else read).add(node.id)
        return read, written

    slot_ptr = ["s%d" % k for k in range(len(o["slots"]))]
    text = []
    for dt, T in CTYPES:
        ctype["T"] = T
        for isa, attr in ISAS:
            fn = "fn_opt_%s_%s_%s" % (o["name"], dt, isa)
            if isa != "base":   # non-x86 / non-gcc builds: the baseline loop under this name
                text.append("#ifdef FN_EW_NO_X86")
                text.append("#define %s fn_opt_%s_%s_base" % (fn, o["name"], dt))
                text.append("#else")
            text.append("%s static void %s(const double* __restrict sc, const %s* __restrict grads, "
                        "%s* __restrict params, %s* __restrict s0, %s* __restrict s1, "
                        "%s* __restrict s2, ptrdiff_t n)" % (attr, fn, T, T, T, T, T))
            text.append("{")
            text.append("    ptrdiff_t e;")
            text.append("    (void)s0; (void)s1; (void)s2;")
            combos = list(itertools.product((True, False), repeat=len(flags)))
            for k, combo in enumerate(combos):
                values = dict(zip(flags, combo))
                body = prune(tree, values)
                read, written = names(body)
                cond = " && ".join("sc[%d] %s 0.0" % (sc_names.index(f), "!=" if v else "==")
                                   for f, v in values.items())
                if len(combos) == 1:
                    text.append("    {")
                elif k == 0:
                    text.append("    if (%s) {" % cond)
                elif k < len(combos) - 1:
                    text.append("    } else if (%s) {" % cond)
                else:
                    text.append("    } else {  /* %s */" % cond)
                text += ["        const double %s = sc[%d];" % (nm, k)
                         for k, nm in enumerate(sc_names) if nm in read]
                text.append("        for (e = 0; e < n; e++) {")
                text.append("            %s p = params[e];" % T)
                text.append("            %s g = grads[e];" % T)
                for s, ptr in zip(o["slots"], slot_ptr):
                    if s in read or s in written:
                        text.append("            %s %s = %s[e];" % (T, s, ptr))
                temps = sorted(written - set(o["slots"]) - {"p", "g"})
                for tmp in temps:
                    text.append("            %s %s;" % (T, tmp))
                text += cs(body, "            ")
                text.append("            params[e] = (%s) p;" % T)
                for s, ptr in zip(o["slots"], slot_ptr):
                    if s in written:
                        text.append("            %s[e] = (%s) %s;" % (ptr, T, s))
                text.append("        }")
            text.append("    }")
            text.append("}")
            if isa != "base":
                text.append("#endif")
    return sc_names, [(nm, HYPER[nm]) for nm in sc_names if nm in HYPER], "\n".join(text)


def act_c(ACTIVATIONS, ISAS, CTYPES):
    """C source of the element-wise activations' row loops: for each activation
    (not softmax), dtype and ISA a forward ``fn_fwd_<name>_<dt>_<isa>(b, act_param, Z,
    A, i0, i1, m)`` (Z += b unless b is NULL, A = f(Z) for rows i0..i1-1) and a
    backward ``fn_bwd_<name>_<dt>_<isa>(Z, A, dA, act_param, dZ, i0, i1, m)``.  The
    formulas of kernels/defs.py are translated from Python to C (exp -> fn_exp);
    the formula runs in double (z and a widened first, as the numba twin does),
    the result is cast back; except the float32
    sigmoid forward, fn_sigmoidf in float lanes (fn_math.h: within 2 ulp; twice
    the lanes of the double formula), and float32 formulas that only compare and
    select (relu, relu6, step, linear: ``exact``), which run in float32 with the
    double formula's bits."""
    binops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
    cmps = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}

    def exact(e):
        """The formula takes float32 values to float32-representable results through
        comparisons and selections only (relu, relu6, step, linear): evaluated in
        float32 it gives the double formula's bits (and dA times it too: the double
        product of two float32 values is exact, so its rounding is float32's)."""
        if isinstance(e, ast.Name):
            return e.id in ("z", "a")
        if isinstance(e, ast.Constant):
            return struct.unpack("f", struct.pack("f", float(e.value)))[0] == float(e.value)
        if isinstance(e, ast.IfExp):
            return exact(e.test) and exact(e.body) and exact(e.orelse)
        if isinstance(e, ast.Compare):
            return exact(e.left) and all(exact(c) for c in e.comparators)
        if isinstance(e, ast.BoolOp):
            return all(exact(v) for v in e.values)
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return exact(e.operand)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in ("fmin", "fmax"):
            return all(exact(v) for v in e.args)
        return False

    def cx(e, flt=False):
        if isinstance(e, ast.Name):
            return e.id
        if isinstance(e, ast.Constant):
            return repr(float(e.value)) + ("f" if flt else "")
        if isinstance(e, ast.BinOp) and type(e.op) in binops:
            return "(%s %s %s)" % (cx(e.left, flt), binops[type(e.op)], cx(e.right, flt))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return "(-%s)" % cx(e.operand, flt)
        if isinstance(e, ast.IfExp):
            return "(%s ? %s : %s)" % (cx(e.test, flt), cx(e.body, flt), cx(e.orelse, flt))
        if isinstance(e, ast.Compare) and len(e.ops) == 1 and type(e.ops[0]) in cmps:
            return "(%s %s %s)" % (cx(e.left, flt), cmps[type(e.ops[0])], cx(e.comparators[0], flt))
        if isinstance(e, ast.BoolOp):
            op = " && " if isinstance(e.op, ast.And) else " || "
            return "(" + op.join(cx(v, flt) for v in e.values) + ")"
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            name = {"exp": "fn_exp"}.get(e.func.id, e.func.id)
            if flt and name in ("fmin", "fmax"):
                name += "f"
            return "%s(%s)" % (name, ", ".join(cx(a, flt) for a in e.args))
        raise ValueError("act_c: cannot translate %s" % ast.dump(e))

    def tree(formula):
        return ast.parse(_with_fn_sigmoid(formula), mode="eval").body

    def cf(formula, flt=False):
        return cx(tree(formula), flt)

    text = []
    for a in ACTIVATIONS:
        if a.get("rowwise"):
            continue
        for dt, T in CTYPES:
            # float32 formulas that only compare and select run in float32 lanes (twice
            # the lanes of double; the same bits, see exact)
            fx = dt == "f32" and exact(tree(a["forward"]))
            bx = dt == "f32" and exact(tree(a["backward"]))
            fwd, bwd = cf(a["forward"], fx), cf(a["backward"], bx)
            for isa, attr in ISAS:
                name = "%s_%s_%s" % (a["name"], dt, isa)
                if isa != "base":
                    text.append("#ifdef FN_EW_NO_X86")
                    text.append("#define fn_fwd_%s fn_fwd_%s_%s_base" % (name, a["name"], dt))
                    text.append("#define fn_bwd_%s fn_bwd_%s_%s_base" % (name, a["name"], dt))
                    text.append("#else")
                text += [
                    "%s static void fn_fwd_%s(const %s* b, double act_param, %s* Z, %s* A, "
                    "ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t m)" % (attr, name, T, T, T),
                    "{",
                    "    ptrdiff_t i, j;",
                    "    (void)act_param;",
                ] + ([
                    "    if (b != NULL) {  /* cheap formula: bias and activation in one pass over Z */",
                    "        for (i = i0; i < i1; i++)",
                    "            for (j = 0; j < m; j++) {",
                    "                %s z = Z[i * m + j] + b[j];" % T,
                    "                Z[i * m + j] = z;",
                    "                A[i * m + j] = (%s) (%s);" % (T, fwd),
                    "            }",
                    "        return;",
                    "    }",
                ] if fx else []) + [
                    "    if (b != NULL)",
                    "        for (i = i0; i < i1; i++)",
                    "            for (j = 0; j < m; j++)",
                    "                Z[i * m + j] = Z[i * m + j] + b[j];",
                    "    /* one flat loop over the rows: a single vector remainder, not one per row */",
                    "    for (j = i0 * m; j < i1 * m; j++) {",
                    "        %s z = Z[j];" % T,
                    "        A[j] = (%s) (%s);" % (T, "fn_sigmoidf(z)" if (a["name"] == "sigmoid" and dt == "f32") else fwd),
                    "    }",
                    "}",
                    "%s static void fn_bwd_%s(const %s* Z, const %s* A, const %s* dA, double act_param, "
                    "%s* dZ, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t m)" % (attr, name, T, T, T, T),
                    "{",
                    "    ptrdiff_t i, j;",
                    "    (void)act_param;",
                    "    ptrdiff_t e;",
                    "    (void)i; (void)j;",
                    "    for (e = i0 * m; e < i1 * m; e++) {",
                    ("        %s z = Z[e], a = A[e];  /* compares and selects only: float32 lanes */" % T
                     if bx else "        double z = Z[e], a = A[e];  /* the formula in double: 1 - a a too */"),
                    "        (void)z; (void)a;",
                    "        dZ[e] = (%s) (dA[e] * (%s));" % (T, bwd),
                    "    }",
                    "}",
                ]
                if isa != "base":
                    text.append("#endif")
    return "\n".join(text)


# ---------------------------------------------------------------------------
# numba twin (kernels/templates/elementwise.py.tp)
# ---------------------------------------------------------------------------
def act_py(formula):
    """An activation formula as :func:`act_c` translates it (so both twins
    evaluate the same operations): the stable sigmoid through fn_sigmoid, exp
    through fn_exp (kernels/numba/fn_math.py, fn_math.h's functions)."""
    return re.sub(r"\bexp\(", "fn_exp(", _with_fn_sigmoid(formula))


def uses(text, name):
    """Whether the formula text mentions the variable ``name``."""
    return re.search(r"\b%s\b" % name, text) is not None


def typed_element(opt, items):
    """The optimizer's element lines with every maximal subexpression of hyper-
    parameters and per-step scalars alone (``1.0 - beta2``, ``eps``) replaced by
    ``_s<k>``: _opt_typed computes them once per step in float64 and stores them
    in ``_s``, an array of the parameters' dtype, the tile reads them into locals
    before its loop (so LLVM sees no aliasing), and the element arithmetic runs in that
    dtype, as torch.optim and the Cython twin do (a test on scalars alone, such
    as ``momentum > 0.0``, stays in float64).  ``items``: the (name, slot) pairs
    of HYPER.  Returns (prologue lines, element lines, number of ``_s`` slots)."""
    names = {name for name, slot in items}
    for line in opt["scalars"]:
        names.add(line.split("=")[0].strip())
    tree = ast.parse("\n".join(opt["element"]))
    found = []

    def scalar_only(e):
        return all(n.id in names for n in ast.walk(e) if isinstance(n, ast.Name))

    class Hoist(ast.NodeTransformer):
        def generic_visit(self, node):
            if (isinstance(node, ast.expr) and scalar_only(node)
                    and not isinstance(node, (ast.Compare, ast.BoolOp, ast.Constant))):
                src = ast.unparse(node)
                if src not in found:
                    found.append(src)
                return ast.Name(id="_s%d" % found.index(src), ctx=ast.Load())
            if isinstance(node, (ast.Compare, ast.BoolOp)) and scalar_only(node):
                return node
            return super().generic_visit(node)

    new = Hoist().visit(tree)
    prologue = ["_s[%d] = %s" % (k, src) for k, src in enumerate(found)]
    return prologue, ast.unparse(new).split("\n"), len(found)


def _flag_test(test, flags):
    """The flag an ``if <flag> != 0.0:`` test reads (None for any other test)."""
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.NotEq)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == 0.0 and test.left.id in flags):
        return test.left.id
    return None


def opt_loop_py(element, slots, flags):
    """The numba tile's element loop over ``pt`` / ``gt`` and the slot arrays
    ``s_<slot>``, for the typed element lines ``element`` (:func:`typed_element`).
    LLVM does not unswitch the loop-invariant ``if <flag> != 0.0:`` tests, so the
    vectorised loop evaluated every branch: the loop is rendered twice, once with
    every flag of ``flags`` that the lines test pruned as 0 (the common case, its
    test taken once outside the loop; it reads the slots its body reads and
    writes those it assigns: SGD without momentum streams 3 arrays, not 5) and
    once as written.  Same operations per element either way."""
    tree = ast.parse("\n".join(element)).body
    used = []

    def prune(stmts):
        out = []
        for st in stmts:
            if isinstance(st, ast.If):
                f = _flag_test(st.test, flags)
                if f is not None:
                    if f not in used:
                        used.append(f)
                    out += prune(st.orelse)
                    continue
                st = ast.If(test=st.test, body=prune(st.body), orelse=prune(st.orelse))
            out.append(st)
        return out

    fast = prune(tree)

    def loop(body, read, written):
        lines = ["for _i in range(pt.shape[0]):", "    p = pt[_i]", "    g = gt[_i]"]
        lines += ["    %s = s_%s[_i]" % (sl, sl) for sl in read]
        lines += ["    " + line for line in body]
        lines += ["    pt[_i] = p"] + ["    s_%s[_i] = %s" % (sl, sl) for sl in written]
        return lines

    general = loop(element, slots, slots)
    if not used:
        return general
    mod = ast.Module(body=fast or [ast.Pass()], type_ignores=[])
    names = [(n.id, type(n.ctx)) for n in ast.walk(mod) if isinstance(n, ast.Name)]
    read = [sl for sl in slots if (sl, ast.Load) in names]
    written = [sl for sl in slots if (sl, ast.Store) in names]
    return (["if %s:" % " and ".join("%s == 0.0" % f for f in used)]
            + ["    " + line for line in loop(ast.unparse(mod).split("\n"), read, written)]
            + ["else:"] + ["    " + line for line in general])


def hyper_used(opt, items):
    """(name, slot) of the hyper-parameters an optimizer's formulas mention."""
    text = "\n".join(opt["scalars"] + opt["element"])
    return [(name, slot) for name, slot in items if uses(text, name)]
