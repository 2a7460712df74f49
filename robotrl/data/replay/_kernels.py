"""Numba kernels for the replay buffers: RNG, gathers, n-step walks, sequence windows, sum/min trees.

All storage is handed to the kernels as flat ``uint8`` buffers plus per-field byte layouts, so one
compiled kernel serves any set of fields, shapes and dtypes. Layout arrays (``int64``):

* ``f_base[f]`` / ``f_rb[f]``: byte offset of field ``f`` in the storage buffer and its row size
  in bytes (row ``i`` of field ``f`` lives at ``f_base[f] + i * f_rb[f]``).
* ``o_base[f]``: byte offset of field ``f`` in the output buffer (row ``r`` at
  ``o_base[f] + r * f_rb[f]``).
* ``obs_f[j]``: the field number of the ``j``-th observation field; ``s_base[j]`` its offset in
  the side storage; ``no_base[j]`` the offset of its next-observation block in the output.

``next_ptr[i]`` is ``-1`` when the next observation of slot ``i`` is the observation of slot
``(i + 1) % capacity``, otherwise the absolute index of its next observation in the side storage
(row ``next_ptr[i] % side_rows``). A slot with ``next_ptr >= 0`` ends a segment (episode end,
stream break or newest transition).

The RNG is xoshiro256** with its 4-word state in a ``uint64`` array owned by each buffer, so
buffers are independently seeded, reproducible and their state can be saved.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, fastmath=False)

_U11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


# ----------------------------------------------------------------------------------------- RNG
@nb.njit(**_JIT)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@nb.njit(**_JIT)
def rng_seed(state, seed):
    """Fill the 4-word xoshiro256** ``state`` from an integer ``seed`` with splitmix64."""
    z = np.uint64(seed)
    for i in range(4):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        state[i] = x ^ (x >> np.uint64(31))


@nb.njit(**_JIT)
def rng_next(s):
    """Next 64-bit output of xoshiro256** (advances ``s`` in place)."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@nb.njit(**_JIT)
def rng_uniform(s):
    """Uniform float64 in [0, 1)."""
    return (rng_next(s) >> _U11) * _INV53


@nb.njit(**_JIT)
def rng_below(s, n):
    """Uniform integer in [0, n) (bias < n / 2**53, negligible for buffer sizes)."""
    k = np.int64(rng_uniform(s) * n)
    return k if k < n else n - 1


@nb.njit(**_JIT)
def rng_uniform_array(s, out):
    """Fill ``out`` with uniform floats in [0, 1) (used by tests and samplers)."""
    for i in range(out.shape[0]):
        out[i] = rng_uniform(s)


@nb.njit(**_JIT)
def uniform_indices(s, idx, n_live):
    """Fill ``idx`` with slots drawn uniformly from the ``n_live`` written slots [0, n_live)."""
    for b in range(idx.shape[0]):
        idx[b] = rng_below(s, n_live)


# -------------------------------------------------------------------------------------- gathers
@nb.njit(**_JIT)
def _copy_row(dst, d0, src, s0, nbytes):
    for c in range(nbytes):
        dst[d0 + c] = src[s0 + c]


def _nstep_impl(idx, row0, n, gamma, capacity, reward, terminated, truncated, next_ptr,
                buf, f_base, f_rb, out, o_base, obs_f, side, s_base, side_rows, no_base,
                out_reward, out_term, out_trunc, out_disc):
    """Gather slots ``idx`` with n-step returns.

    From slot ``i`` walk at most ``n`` steps forward; stop after a terminated step (discount 0),
    or at a segment end (truncation, stream break, newest transition) or after ``n`` steps
    (discount ``gamma**k`` for a ``k``-step return, bootstrapping from the next observation of
    the last step). ``n == 1`` is the plain one-step transition with ``discount = gamma *
    (1 - terminated)``.
    """
    nf = f_base.shape[0]
    no = obs_f.shape[0]
    for b in nb.prange(idx.shape[0]):
        i = idx[b]
        r = row0 + b
        for f in range(nf):
            rb = f_rb[f]
            _copy_row(out, o_base[f] + r * rb, buf, f_base[f] + i * rb, rb)
        j = i
        ret = 0.0
        g = 1.0
        term = False
        for k in range(n):
            ret += g * reward[j]
            g *= gamma
            if terminated[j]:
                term = True
                break
            if next_ptr[j] >= 0 or k == n - 1:
                break
            j += 1
            if j == capacity:
                j = 0
        out_reward[r] = ret
        out_term[r] = term
        out_trunc[r] = truncated[j] and not term
        out_disc[r] = 0.0 if term else g
        p = next_ptr[j]
        if p >= 0:
            srow = p % side_rows
            for jj in range(no):
                rb = f_rb[obs_f[jj]]
                _copy_row(out, no_base[jj] + r * rb, side, s_base[jj] + srow * rb, rb)
        else:
            nxt = j + 1
            if nxt == capacity:
                nxt = 0
            for jj in range(no):
                f = obs_f[jj]
                rb = f_rb[f]
                _copy_row(out, no_base[jj] + r * rb, buf, f_base[f] + nxt * rb, rb)


gather_nstep = nb.njit(**_JIT)(_nstep_impl)
gather_nstep_parallel = nb.njit(parallel=True, **_JIT)(_nstep_impl)


def _sequence_impl(idx, row0, T, capacity, next_ptr, buf, f_base, f_rb, out, o_base, obs_f,
                   side, s_base, side_rows, no_base, mask):
    """Gather windows of ``T`` consecutive steps starting at slots ``idx``.

    A window never crosses a segment end: the steps after the end of the start's episode are
    filled with copies of the last valid step and get ``mask = False``. Output rows are
    ``(row0 + b) * T + t``.
    """
    nf = f_base.shape[0]
    no = obs_f.shape[0]
    for b in nb.prange(idx.shape[0]):
        j = idx[b]
        valid = True
        for t in range(T):
            if t > 0 and valid:
                if next_ptr[j] >= 0:
                    valid = False
                else:
                    j += 1
                    if j == capacity:
                        j = 0
            r = (row0 + b) * T + t
            mask[r] = valid
            for f in range(nf):
                rb = f_rb[f]
                _copy_row(out, o_base[f] + r * rb, buf, f_base[f] + j * rb, rb)
            p = next_ptr[j]
            if p >= 0:
                srow = p % side_rows
                for jj in range(no):
                    rb = f_rb[obs_f[jj]]
                    _copy_row(out, no_base[jj] + r * rb, side, s_base[jj] + srow * rb, rb)
            else:
                nxt = j + 1
                if nxt == capacity:
                    nxt = 0
                for jj in range(no):
                    f = obs_f[jj]
                    rb = f_rb[f]
                    _copy_row(out, no_base[jj] + r * rb, buf, f_base[f] + nxt * rb, rb)


gather_sequence = nb.njit(**_JIT)(_sequence_impl)
gather_sequence_parallel = nb.njit(parallel=True, **_JIT)(_sequence_impl)


# ------------------------------------------------------------------------------ side storage
@nb.njit(**_JIT)
def rows_equal(a, b):
    """Per row, whether the byte rows of 2-D uint8 arrays ``a`` and ``b`` are identical."""
    n = a.shape[0]
    res = np.ones(n, dtype=np.bool_)
    w = a.shape[1]
    for r in range(n):
        for c in range(w):
            if a[r, c] != b[r, c]:
                res[r] = False
                break
    return res


# ----------------------------------------------------------------------------- sum / min trees
# Trees use the implicit heap layout with ``capacity`` leaves at nodes ``capacity .. 2*capacity-1``
# and internal node ``k`` = children ``2k, 2k+1`` (root 1). For a capacity that is not a power of
# two the leaves sit at two depths; proportional sampling only needs every leaf to own one interval
# of the root's mass, which this layout gives.


@nb.njit(**_JIT)
def tree_set(sum_tree, min_tree, capacity, slots, values):
    """Set leaf ``slots[k]`` to ``values[k]`` and recompute its ancestors (sum and min)."""
    for k in range(slots.shape[0]):
        node = slots[k] + capacity
        v = values[k]
        sum_tree[node] = v
        min_tree[node] = v
        node >>= 1
        while node >= 1:
            sum_tree[node] = sum_tree[2 * node] + sum_tree[2 * node + 1]
            a = min_tree[2 * node]
            c = min_tree[2 * node + 1]
            min_tree[node] = a if a < c else c
            node >>= 1


@nb.njit(**_JIT)
def tree_set_range(sum_tree, min_tree, capacity, start, count, value):
    """Set ``count`` consecutive leaves (circular from ``start``) to ``value``."""
    for k in range(count):
        slot = start + k
        if slot >= capacity:
            slot -= capacity
        node = slot + capacity
        sum_tree[node] = value
        min_tree[node] = value
        node >>= 1
        while node >= 1:
            sum_tree[node] = sum_tree[2 * node] + sum_tree[2 * node + 1]
            a = min_tree[2 * node]
            c = min_tree[2 * node + 1]
            min_tree[node] = a if a < c else c
            node >>= 1


@nb.njit(**_JIT)
def _tree_find(sum_tree, capacity, u):
    node = 1
    while node < capacity:
        left = 2 * node
        ls = sum_tree[left]
        if u < ls:
            node = left
        else:
            u -= ls
            node = left + 1
    return node - capacity


@nb.njit(**_JIT)
def tree_sample(s, sum_tree, min_tree, capacity, n_live, idx, weights, beta, stratified):
    """Draw ``len(idx)`` slots with probability ``leaf / total`` and their importance weights.

    ``weights[b] = (N * P(i))**-beta / max_j (N * P(j))**-beta = (p_i / p_min)**-beta``.
    With ``stratified`` the mass is cut into ``B`` equal segments and one slot drawn in each
    (Schaul et al.); otherwise draws are independent.
    """
    B = idx.shape[0]
    total = sum_tree[1]
    p_min = min_tree[1]
    seg = total / B
    for b in range(B):
        slot = -1
        for _attempt in range(16):
            if stratified:
                u = (b + rng_uniform(s)) * seg
            else:
                u = rng_uniform(s) * total
            if u >= total:
                u = total * 0.9999999999999998
            cand = _tree_find(sum_tree, capacity, u)
            if cand < n_live and sum_tree[cand + capacity] > 0.0:
                slot = cand
                break
        if slot < 0:  # floating-point edge case: fall back to a uniform live slot
            slot = rng_below(s, n_live)
        idx[b] = slot
        p = sum_tree[slot + capacity]
        if p > 0.0 and p_min > 0.0:
            weights[b] = (p / p_min) ** (-beta)
        else:
            weights[b] = 1.0
