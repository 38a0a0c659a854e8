# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython twin's two-thread split step (numba has none; the plain step of
network.pyx forms the same sums on one thread).

Small batches of a network whose first layer dominates (the seed workload,
784-30-10 at batch 10: every product far below the parallel thresholds, so the
plain step would run on one thread) form the first layer's product in two halves
of p (network.pyx: ``_ksplit``, by the shapes alone, in every driver).  With two
threads, ``network.step_plan`` says when, train_batches hands the batches to
``train_split`` (a cdef entry, declared in split.pxd; this module cimports the
plain step's ``_layer_z`` and ``_loss_head`` from network.pxd, whose functions
are exported before either module imports the other's): each thread owns one half of p (its rows of W_0, its columns
of the batch), the rest of the step runs on both, one team barrier per batch.
"""
from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import numpy as np

from ._generated_layer cimport layer_t
from .matmul cimport matmul_c, matmul_tn_c, matmul_nt_c, matmul_ptr_c
from ._generated_elementwise cimport bias_act_forward_c, act_backward_c, optimizer_update_c
from .reduce cimport bias_grad_c, records
from .network cimport _layer_z, _loss_head

from fastnet._kernels import defs

cdef int HEAD_SOFTMAX_XENT = defs.HEAD_SOFTMAX_XENT
cdef int HEAD_SIGMOID_BCE = defs.HEAD_SIGMOID_BCE


# Per step, with r the split of p (network._ksplit):
#
#   A  part p: its columns of the batch's rows @ its rows of W_0 ->
#      partial[step % 2][p]                                                 (both)
#      (the narrow kernels read the rows in place through row pointers,
#      matmul_ptr_c; wider layers read a copy of part p gathered the step before)
#   -- barrier --
#   B  Z_0 = partial 0 + partial 1, the bias and activation, layers 1..L-1,
#      the loss head, backward to dz_0 and every gradient except dW_0: each
#      thread in its own workspace, with its own copy of the parameters other
#      than W_0 (thread 0's are the caller's buffers), updated alike; between
#      its stages, part p of the next batch's rows prefetched
#   C  part p: dW_0 rows of part p = X_b[:, part].T @ dz_0 (the rows in place
#      again, or the gathered copy), their update (then the next gather)
#
# Thread 1 writes partial[(step + 1) % 2] only after the barrier of step + 1,
# which thread 0 passes after its B of step, so two slots suffice.  The arithmetic
# of every element is the plain step's: bit-identical results for any thread
# count (tests/test_cython_backend.py).  A team of one thread (no OpenMP, or
# nested) does both parts.

cdef extern from *:
    """
    static inline void fn_prefetch_l1(const void* p, Py_ssize_t nbytes) {
        const char* c = (const char*) p;
        for (Py_ssize_t o = 0; o < nbytes; o += 64) __builtin_prefetch(c + o, 0, 3);
    }
    #ifdef _OPENMP
    #include <omp.h>
    static inline int fn_team_size(void) { return omp_get_num_threads(); }
    static inline int fn_team_id(void) { return omp_get_thread_num(); }
    static inline void fn_team_barrier(void) {
    #pragma omp barrier
    }
    #else
    static inline int fn_team_size(void) { return 1; }
    static inline int fn_team_id(void) { return 0; }
    static inline void fn_team_barrier(void) {}
    #endif
    """
    int fn_team_size() noexcept nogil
    void fn_prefetch_l1(const void* p, Py_ssize_t nbytes) noexcept nogil
    int fn_team_id() noexcept nogil
    void fn_team_barrier() noexcept nogil


cdef inline void _split_gather(const floating* X, Py_ssize_t n_in, const int64_t* perm,
                               Py_ssize_t M, Py_ssize_t bs, Py_ssize_t b, Py_ssize_t c0,
                               Py_ssize_t c1, floating* xp) noexcept nogil:
    """Columns c0..c1 of batch b's rows, contiguous into xp (nb x (c1 - c0))."""
    cdef Py_ssize_t r0 = b * bs
    cdef Py_ssize_t nb = min(bs, M - r0), i
    for i in range(nb):
        memcpy(xp + i * (c1 - c0), X + perm[r0 + i] * n_in + c0, (c1 - c0) * sizeof(floating))


cdef inline void _prefetch_rows(const floating* X, Py_ssize_t n_in, const int64_t* rows,
                                Py_ssize_t n, Py_ssize_t g, Py_ssize_t c0,
                                Py_ssize_t c1) noexcept nogil:
    """Share g of 5 of the prefetch of columns c0..c1 of the rows X[rows[0:n]]."""
    cdef Py_ssize_t i
    for i in range(g * n // 5, (g + 1) * n // 5):
        fn_prefetch_l1(X + rows[i] * n_in + c0, (c1 - c0) * sizeof(floating))


cdef void _split_tail(bint owner, Py_ssize_t step, const int64_t* rows, Py_ssize_t nb,
                      Py_ssize_t r0, const floating* Y, const int64_t* labels,
                      const floating* sw, const layer_t* layers, Py_ssize_t L, int head, int opt,
                      const double* h, Py_ssize_t t, const floating* part0,
                      const floating* part1, floating* params, floating* grads,
                      floating* state, Py_ssize_t P, floating* w, const Py_ssize_t* offs,
                      double* row_loss, double* batch_loss, floating* scores,
                      const floating* X, Py_ssize_t n_in, const int64_t* nrows, Py_ssize_t nn,
                      Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Phase B in workspace w with the parameter copy (params, grads, state), then
    the update of everything but W_0 in that copy; dz_0 is left in w's D buffer
    of layer 0 (offs[3 * L] for odd L, offs[3 * L + 1] for even).  ``owner``
    also writes the batch loss and the scores.  _train's code for these layers,
    on one thread.  Between its stages, the prefetch of columns c0..c1 of the
    next batch's rows X[nrows[0:nn]] into L1, in five shares: phase B touches
    little memory, and A reads those rows next; prefetched into L1 (locality 3),
    not L2 (the seed epoch of bench/REPORT.md)."""
    cdef bint fused = head == HEAD_SOFTMAX_XENT or head == HEAD_SIGMOID_BCE
    cdef Py_ssize_t k = layers[L - 1].n_out, zw0 = layers[0].n_out, l, i, w_in, zw, bo
    cdef floating* Z0 = w + offs[0]
    cdef floating* A0 = w + offs[1]
    cdef floating* D = w + offs[3 * L]
    cdef floating* D2 = w + offs[3 * L + 1]
    cdef floating* tmp
    cdef floating* ZL = w + offs[3 * (L - 1)]
    cdef floating* AL = w + offs[3 * (L - 1) + 1]
    cdef double data
    bo = layers[0].b_offset
    for i in range(nb * zw0):
        Z0[i] = part0[i] + part1[i]
    bias_act_forward_c(params + bo if bo >= 0 else NULL, <int> layers[0].act, layers[0].act_param,
                       Z0, A0, nb, zw0, 1)
    _prefetch_rows(X, n_in, nrows, nn, 0, c0, c1)
    for l in range(1, L):
        _layer_z(w + offs[3 * (l - 1) + 1], layers, l, params, w + offs[3 * l],
                 w + offs[3 * l + 1], nb, l == L - 1 and fused, 1)
    _prefetch_rows(X, n_in, nrows, nn, 1, c0, c1)
    data = _loss_head(head, ZL, AL, Y, labels, sw, rows, layers, L, row_loss, D,
                      nb, k, 1)
    _prefetch_rows(X, n_in, nrows, nn, 2, c0, c1)
    if owner:
        batch_loss[step] = data
        if scores != NULL:
            memcpy(scores + r0 * k, AL, nb * k * sizeof(floating))
    for l in range(L - 1, 0, -1):
        w_in = layers[l].n_in
        zw = layers[l].n_out
        bo = layers[l].b_offset
        matmul_tn_c(w + offs[3 * (l - 1) + 1], D, grads + layers[l].w_offset, w_in, nb, zw, 1)
        if bo >= 0:
            bias_grad_c(D, grads + bo, nb, zw, 1)
        matmul_nt_c(D, params + layers[l].w_offset, D2, nb, zw, w_in, NULL, 1)
        act_backward_c(w + offs[3 * (l - 1)], w + offs[3 * (l - 1) + 1], D2,
                       <int> layers[l - 1].act, layers[l - 1].act_param, D2,
                       nb, w_in, 1)
        tmp = D
        D = D2
        D2 = tmp
    _prefetch_rows(X, n_in, nrows, nn, 3, c0, c1)
    bo = layers[0].b_offset
    if bo >= 0:
        bias_grad_c(D, grads + bo, nb, zw0, 1)
        optimizer_update_c(opt, h, 1.0, t, grads + bo, params + bo, state + bo, zw0, P, 1)
    for l in range(1, L):
        optimizer_update_c(opt, h, 1.0, t, grads + layers[l].w_offset, params + layers[l].w_offset,
                           state + layers[l].w_offset,
                           layers[l].n_in * layers[l].n_out, P, 1)
        bo = layers[l].b_offset
        if bo >= 0:
            optimizer_update_c(opt, h, 1.0, t, grads + bo, params + bo, state + bo,
                               layers[l].n_out, P, 1)
    _prefetch_rows(X, n_in, nrows, nn, 4, c0, c1)


cdef void _split_thread(
        int tid, int team,
        const floating* X, Py_ssize_t n_in, const floating* Y, const int64_t* labels,
        const floating* sw, const int64_t* perm, Py_ssize_t M,
        Py_ssize_t bs, Py_ssize_t first_batch, Py_ssize_t n_batches,
        const layer_t* layers, Py_ssize_t L,
        int head, int opt, const double* h, Py_ssize_t t0,
        floating* params, floating* grads, floating* state, Py_ssize_t P,
        floating* params1, floating* grads1, floating* state1,
        floating* work, floating* work1, floating* xparts, floating* partial,
        double* batch_loss, floating* scores, const Py_ssize_t* offs,
        double* row_loss, const floating** rowp, Py_ssize_t r) noexcept nogil:
    """One thread's share of the split step: part tid of 2 (a team of 2), or both
    parts (a team of 1).  Thread 1 runs phase B on params1 / grads1 / state1 and
    work1."""
    cdef Py_ssize_t zw0 = layers[0].n_out, W0 = layers[0].w_offset
    cdef Py_ssize_t step, b, r0, nb, p, ra, rb, i
    cdef floating* D
    cdef floating* xp
    cdef floating* slot
    cdef bint owner = tid == 0
    cdef floating* w = work if owner else work1
    # the narrow kernels read the batch's rows in place (through rowp) where they
    # apply (at most 4 vectors of hidden units); otherwise each part is gathered
    cdef bint direct = matmul_ptr_c(0, rowp, 0, params, partial, 0, 0, zw0) == 0
    rowp = rowp + tid * bs
    if not direct:
        for p in range(2):
            if team == 1 or p == tid:
                ra = 0 if p == 0 else r
                rb = r if p == 0 else n_in
                _split_gather(X, n_in, perm, M, bs, first_batch, ra, rb,
                              xparts + p * bs * (n_in - r))
    for step in range(n_batches):
        b = first_batch + step
        r0 = b * bs
        nb = min(bs, M - r0)
        slot = partial + (step % 2) * 2 * bs * zw0
        if direct:
            for i in range(nb):
                rowp[i] = X + perm[r0 + i] * n_in
        # ---- A: this thread's half of p of layer 0's product
        for p in range(2):
            if team == 1 or p == tid:
                ra = 0 if p == 0 else r
                rb = r if p == 0 else n_in
                if direct:
                    matmul_ptr_c(0, rowp, ra, params + W0 + ra * zw0, slot + p * bs * zw0,
                                 nb, rb - ra, zw0)
                else:
                    matmul_c(xparts + p * bs * (n_in - r), params + W0 + ra * zw0,
                             slot + p * bs * zw0, nb, rb - ra, zw0, 1)
        fn_team_barrier()
        # ---- B: the rest of the step in this thread's workspace and parameter copy
        _split_tail(owner, step, perm + r0, nb, r0, Y, labels, sw, layers, L,
                    head, opt, h, t0 + step + 1, slot, slot + bs * zw0,
                    params if owner else params1, grads if owner else grads1,
                    state if owner else state1, P, w, offs, row_loss + tid * bs,
                    batch_loss, scores, X, n_in, perm + r0 + bs,
                    min(bs, M - r0 - bs) if step + 1 < n_batches else 0,
                    0 if team == 1 or tid == 0 else r, r if team > 1 and tid == 0 else n_in)
        D = w + (offs[3 * L] if L % 2 == 1 else offs[3 * L + 1])
        # ---- C: this thread's rows of dW_0, their update, its part of the next rows
        for p in range(2):
            if team == 1 or p == tid:
                ra = 0 if p == 0 else r
                rb = r if p == 0 else n_in
                xp = xparts + p * bs * (n_in - r)
                if direct:
                    matmul_ptr_c(1, rowp, ra, D, grads + W0 + ra * zw0, rb - ra, nb, zw0)
                else:
                    matmul_tn_c(xp, D, grads + W0 + ra * zw0, rb - ra, nb, zw0, 1)
                optimizer_update_c(opt, h, 1.0, t0 + step + 1, grads + W0 + ra * zw0,
                                   params + W0 + ra * zw0, state + W0 + ra * zw0,
                                   (rb - ra) * zw0, P, 1)
                if not direct and step + 1 < n_batches:
                    _split_gather(X, n_in, perm, M, bs, b + 1, ra, rb, xp)


cdef int train_split(const floating[:, ::1] X, const floating[:, ::1] Y, const int64_t[::1] labels,
                     const floating[::1] sw, const int64_t[::1] perm, Py_ssize_t batch_size,
                     Py_ssize_t first_batch, Py_ssize_t n_batches, object layers, int head, int opt,
                     const double[::1] h, Py_ssize_t t0, floating[::1] params, floating[::1] grads,
                     floating[:, ::1] state, floating[::1] work, double[::1] batch_loss,
                     floating[:, ::1] scores, const Py_ssize_t[::1] offs, Py_ssize_t r_split,
                     bint sparse) except -1:
    """network.train_batches's batches on two threads, the first layer's p split at
    r_split (network.step_plan chose it; every argument already checked there; h is
    train_batches's private copy of hyper, offs its workspace layout)."""
    cdef Py_ssize_t L, P = params.shape[0], size = work.shape[0], M = perm.shape[0]
    cdef const layer_t* net = records(layers, &L)
    cdef Py_ssize_t zw0 = net[0].n_out
    dt = np.float32 if floating is float else np.float64
    # thread 1's copy of the parameters other than W_0 (and of W_0, unused), its workspace
    cdef floating[::1] params1 = np.array(params)
    cdef floating[::1] grads1 = np.zeros(P, dtype=dt)
    cdef floating[::1] state1 = np.array(state).reshape(-1)
    cdef floating[::1] work1 = np.empty(size, dtype=dt)
    cdef floating[::1] xparts = np.empty(2 * batch_size * (X.shape[1] - r_split), dtype=dt)
    cdef floating[::1] partial = np.empty(4 * batch_size * zw0, dtype=dt)
    cdef double[::1] row_loss2 = np.empty(2 * batch_size, dtype=np.float64)
    # the batch's row pointers, one set per thread
    rowp_arr = np.empty(2 * batch_size, dtype=np.intp)
    cdef Py_ssize_t rowp_addr = <Py_ssize_t> rowp_arr.ctypes.data
    with nogil, parallel(num_threads=2):
        _split_thread(fn_team_id(), fn_team_size(),
                      &X[0, 0], X.shape[1], &Y[0, 0] if not sparse else NULL,
                      &labels[0] if sparse else NULL, &sw[0] if sw.shape[0] else NULL,
                      &perm[0], M, batch_size, first_batch, n_batches,
                      net, L,
                      head, opt, &h[0], t0,
                      &params[0], &grads[0], &state[0, 0], P,
                      &params1[0], &grads1[0], &state1[0],
                      &work[0], &work1[0], &xparts[0], &partial[0], &batch_loss[0],
                      &scores[0, 0] if scores.shape[0] else NULL,
                      &offs[0], &row_loss2[0], <const floating**> rowp_addr, r_split)
    return 0
