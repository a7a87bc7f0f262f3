"""The compiled depth-first search behind :meth:`grouping.selection.pricing.GroupPricer.groups_above`.

One call explores the groups of one size ``m`` in lexicographic order of the (already reordered) tasks,
cutting every partial group whose chord bound (``grouping.selection.pricing``'s module docstring) is below
the threshold, for at most ``budget`` nodes; the search state lives in arrays the caller owns, so the
caller can read the deadline between calls and resume. Compiled with numba (the same search in numpy
batches spent most of its time allocating temporaries: 80 s against 14 s for one complete pass at 40
tasks and three groups).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``state`` holds ``[members placed, groups in the output buffer, 1 when the search is complete]``
DEPTH, FOUND, DONE = 0, 1, 2


def new_state(n: int, m: int, buffer: int) -> dict[str, np.ndarray]:
    """The arrays one search of size ``m`` over ``n`` tasks resumes from, with room for ``buffer``
    groups found between two calls."""
    return {"state": np.zeros(3, dtype=np.int64), "sums": np.zeros(n), "members": np.zeros(m, dtype=np.int64),
            "next": np.zeros(m + 1, dtype=np.int64), "found_d": np.empty(buffer),
            "found": np.empty((buffer, m), dtype=np.int64)}


#: the one signature, compiled when this module is imported (or read from numba's cache), so that no
#: time-limited solve pays for compilation
SIGNATURE = ("f8(f8[:, ::1], f8[::1], f8, f8[:, :, ::1], f8[:, :, ::1], i8, f8, f8, i8[::1], f8[::1], "
             "i8[::1], i8[::1], f8[::1], i8[:, ::1], i8)")


@njit(SIGNATURE, cache=True, nogil=True)
def search(a: np.ndarray, pi: np.ndarray, mu: float, top: np.ndarray, bottom: np.ndarray, m: int,
           threshold: float, adaptive: float, state: np.ndarray, sums: np.ndarray, members: np.ndarray,
           nxt: np.ndarray, found_d: np.ndarray, found: np.ndarray, budget: int) -> float:
    """Resume the search of size ``m`` for at most ``budget`` new nodes; return the threshold (raised to
    ``adaptive`` times the best ``d`` found when ``adaptive > 0``).

    ``sums[i] = sum_{j in P} A[i][j]`` for the partial group ``P = members[:state[DEPTH]]``; ``nxt[t]``
    is the next task tried at depth ``t``; ``top[i, s, r]`` / ``bottom[i, s, r]`` are the sums of the
    ``r`` largest / smallest ``A[i][j]`` over ``j >= s, j != i``. Groups with ``d >= threshold`` are
    appended to ``found``/``found_d`` (the call returns when that buffer is full)."""
    n = a.shape[0]
    t = state[DEPTH]
    count = state[FOUND]
    scale = 1.0 / (m - 1)
    slope = np.empty(m)
    sloped = np.empty(m, dtype=np.int64)
    weight = np.empty(n)
    largest = np.empty(m)
    best = -np.inf
    for q in range(count):
        best = max(best, found_d[q])
    nodes = 0
    while nodes < budget and count < found_d.shape[0]:
        if t < 0:
            state[DONE] = 1
            break
        j = nxt[t]
        if j > n - (m - t):  # no room left for the members still missing: back up one level
            t -= 1
            if t >= 0:
                for i in range(n):
                    sums[i] -= a[i, members[t]]
                nxt[t] = members[t] + 1
            continue
        members[t] = j
        for i in range(n):
            sums[i] += a[i, j]
        t += 1
        nodes += 1
        if t == m:
            d = -mu
            for q in range(m):
                d += max(0.0, sums[members[q]] * scale - pi[members[q]])
            if d >= threshold:
                found_d[count] = d
                found[count, :] = members
                count += 1
                if adaptive > 0.0 and d > best:
                    best = d
                    threshold = max(threshold, adaptive * best)
            cut = True
        else:
            r, start = m - t, j + 1
            # the members' chords: alpha + slope * t_i over t_i in [lo, hi]
            alpha, active = 0.0, 0
            for q in range(t):
                i = members[q]
                b = sums[i] * scale - pi[i]
                hi, lo = top[i, start, r] * scale, bottom[i, start, r] * scale
                if b + lo >= 0.0:
                    slope[active], sloped[active] = 1.0, i
                    active += 1
                    alpha += b
                elif b + hi > 0.0:
                    s = (b + hi) / (hi - lo)
                    slope[active], sloped[active] = s, i
                    active += 1
                    alpha -= s * lo
            free = n - start
            for c in range(start, n):
                acc = 0.0
                for q in range(active):
                    acc += slope[q] * a[sloped[q], c]
                weight[c - start] = acc * scale + max(0.0, (sums[c] + top[c, start, r - 1]) * scale - pi[c])
            bound = alpha - mu
            if r == free:
                for q in range(free):
                    bound += weight[q]
            else:  # the r largest weights, by insertion into a sorted buffer
                kept = 0
                for q in range(free):
                    v = weight[q]
                    if kept < r:
                        p = kept
                        kept += 1
                    elif v > largest[r - 1]:
                        p = r - 1
                    else:
                        continue
                    while p > 0 and largest[p - 1] < v:
                        largest[p] = largest[p - 1]
                        p -= 1
                    largest[p] = v
                for q in range(r):
                    bound += largest[q]
            cut = bound < threshold
        if cut:
            t -= 1
            for i in range(n):
                sums[i] -= a[i, j]
        nxt[t] = j + 1
    state[DEPTH] = t
    state[FOUND] = count
    return threshold
