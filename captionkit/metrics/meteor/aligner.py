"""METEOR's alignment search (Denkowski & Lavie 2010/2011, "the aligner"), exactly as METEOR 1.5 runs it.

Candidates that are the only match of their reference word and overlap nothing are fixed first. The
rest is a left-to-right beam search over reference positions (beam 40): at each position every
partial alignment either takes one of the candidates that start there and use no taken word, or
skips the position. Partial alignments are ranked (stable sort) by, in order: more matched words
counted with the search weights (exact 1, others 0.5; each addition truncated to an integer, as the
jar's int fields do), fewer chunks, smaller distance. Two quirks of the jar are reproduced because
they decide ties: a candidate's distance |start - match_start| is added to the *parent* alignment
(so later siblings and the skip branch inherit it), and a chunk is closed when a position is skipped.
The result's match counts and chunks are then recounted from the chosen matches.
"""
from __future__ import annotations

from operator import itemgetter

BEAM = 40
SEARCH_WEIGHTS = (1.0, 0.5, 0.5, 0.5)        # exact, stem, synonym, paraphrase (MeteorScorer)

# A partial alignment is a list [key, m1, m2, idx, last_end, used1, used2, chosen]: key ranks it as
# the jar does, -(m1 + m2) first, then chunks, then distance, packed in one int (chunks and distance
# stay far below 2**32) so the stable sort compares ints; chosen is a linked list (parent, match).
KEY, M1, M2, IDX, LAST, USED1, USED2, CHOSEN = range(8)
_S1, _S2 = 1 << 32, 1 << 64
_by_key = itemgetter(KEY)


def _take(p, m) -> None:
    """Add match m to partial alignment p (counts, chunk, position)."""
    w = SEARCH_WEIGHTS[m[4]]
    before = p[M1] + p[M2]
    p[M1] = int(p[M1] + m[3] * w)
    p[M2] = int(p[M2] + m[1] * w)
    key = p[KEY] + (before - p[M1] - p[M2]) * _S2
    if p[LAST] != -1 and m[2] != p[LAST]:
        key += _S1
    p[KEY] = key
    p[IDX] = m[0] + m[1]
    p[LAST] = m[2] + m[3]


def fixed_matches(stage) -> list:
    """Per reference position: the one-to-one, non-overlapping candidate, else None."""
    fixed = [None] * len(stage.matches)
    for j, ms in enumerate(stage.matches):
        if len(ms) == 1:
            m = ms[0]
            if all(stage.cov2[j + k] == 1 for k in range(m[1])) and \
                    all(stage.cov1[m[2] + k] == 1 for k in range(m[3])):
                fixed[j] = m
    return fixed


def align(stage) -> list:
    """-> the chosen matches (a list of match tuples, by reference position)."""
    fixed = fixed_matches(stage)
    used1 = used2 = 0
    for m in fixed:
        if m is not None:
            used2 |= m[5]
            used1 |= m[6]
    n = len(stage.matches)
    if not any(len(ms) > (f is not None) for ms, f in zip(stage.matches, fixed)):
        return [m for m in fixed if m is not None]          # nothing to choose: the search is moot
    best = _resolve(stage.matches, fixed, [0, 0, 0, 0, -1, used1, used2, None], n)
    chosen = []
    node = best[CHOSEN]
    while node is not None:
        node, m = node
        chosen.append(m)
    out = {m[0]: m for m in fixed if m is not None}
    out.update((m[0], m) for m in chosen)
    return [out[j] for j in sorted(out)]


def _resolve(matches, fixed, start, n):
    nxt = [start]
    for current in range(n + 1):
        paths = nxt
        nxt = []
        paths.sort(key=_by_key)
        bit = 1 << current
        for path in paths[:BEAM]:
            if current == n:
                if path[LAST] != -1:
                    path[KEY] += _S1                    # close the last chunk
                nxt.append(path)
                continue
            if path[USED2] & bit:
                if current < path[IDX]:
                    nxt.append(path)
                elif fixed[path[IDX]] is not None:
                    m = fixed[path[IDX]]
                    _take(path, m)
                    path[KEY] += abs(m[0] - m[2])
                    nxt.append(path)
                continue
            key, m1, m2, _, last, used1, used2, chosen = path
            for m in matches[current]:
                if used2 & m[5] or used1 & m[6]:
                    continue
                w = SEARCH_WEIGHTS[m[4]]                # _take, inlined: the hot loop
                n1, n2 = int(m1 + m[3] * w), int(m2 + m[1] * w)
                k = path[KEY] + (m1 + m2 - n1 - n2) * _S2
                if last != -1 and m[2] != last:
                    k += _S1
                nxt.append([k, n1, n2, m[0] + m[1], m[2] + m[3], used1 | m[6], used2 | m[5], (chosen, m)])
                path[KEY] += abs(m[0] - m[2])           # (sic) the parent's distance, as in the jar
            if path[LAST] != -1:
                path[KEY] += _S1
                path[LAST] = -1
            path[IDX] += 1
            nxt.append(path)
        if not nxt:
            nxt.append(paths[0])
    nxt.sort(key=_by_key)
    return nxt[0]


def count_chunks(chosen: list) -> int:
    """Chunks of an alignment: runs of matches contiguous and in order on both sides."""
    chunks, last, pos = 0, -1, 0
    for m in chosen:                     # sorted by reference position
        if m[0] > pos and last != -1:    # a gap in the reference ends the chunk
            chunks += 1
            last = -1
        if last != -1 and m[2] != last:
            chunks += 1
        pos = m[0] + m[1]
        last = m[2] + m[3]
    return chunks + (last != -1)
