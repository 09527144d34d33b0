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

# A partial alignment is a list [key, idx, last_end, used1, used2, chosen]: key ranks it as the jar
# does, -(matched words, weighted) first, then chunks, then distance, packed in one int (chunks and
# distance stay far below 2**32) so the stable sort compares ints; chosen is a linked list
# (parent, match). The jar keeps the weighted counts in int fields, truncating each addition: with
# integer counts int(c + n * w) == c + int(n * w), so a match adds int(length * w) on each side
# (``_gain``) and only the sum of both sides enters the rank.
KEY, IDX, LAST, USED1, USED2, CHOSEN = range(6)
_S1, _S2 = 1 << 32, 1 << 64
_by_key = itemgetter(KEY)


def _gain(m) -> int:
    """Weighted matched words a match adds (hypothesis side + reference side, each truncated)."""
    w = SEARCH_WEIGHTS[m[4]]
    return int(m[3] * w) + int(m[1] * w)


def fixed_matches(stage) -> list:
    """Per reference position: the one-to-one, non-overlapping candidate, else None."""
    fixed = [None] * len(stage.matches)
    cov1, cov2 = stage.cov1, stage.cov2
    for j, ms in enumerate(stage.matches):
        if len(ms) == 1:
            m = ms[0]
            if (m[1] == 1 and cov2[j] == 1 or all(cov2[j + k] == 1 for k in range(m[1]))) and \
                    (m[3] == 1 and cov1[m[2]] == 1 or all(cov1[m[2] + k] == 1 for k in range(m[3]))):
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
    best = _resolve(stage.matches, fixed, [0, 0, -1, used1, used2, None], n)
    chosen = []
    node = best[CHOSEN]
    while node is not None:
        node, m = node
        chosen.append(m)
    out = {m[0]: m for m in fixed if m is not None}
    out.update((m[0], m) for m in chosen)
    return [out[j] for j in sorted(out)]


def _resolve(matches, fixed, start, n):
    """The beam search; -> the best complete partial alignment."""
    # per candidate what the search reads, unpacked once: its masks, hypothesis start and ends,
    # what taking it adds to the key before the chunk test (-gain) and its distance
    cands = [[(m[5], m[6], m[2], m[0] + m[1], m[2] + m[3], -_gain(m) * _S2, abs(m[0] - m[2]), m)
              for m in ms] for ms in matches]
    # a fixed match adds its distance at once (the jar adds it when the path reaches it)
    fixed_key = [None if m is None else -_gain(m) * _S2 + abs(m[0] - m[2]) for m in fixed]
    nxt = [start]
    for current in range(n):
        paths = nxt
        nxt = []
        append = nxt.append
        if len(paths) > 1:
            paths.sort(key=_by_key)
            del paths[BEAM:]
        bit = 1 << current
        cs = cands[current]
        for path in paths:
            key, idx, last, used1, used2, chosen = path
            if used2 & bit:
                if current < idx:
                    append(path)
                elif fixed[idx] is not None:           # a fixed match starts here: take it
                    m = fixed[idx]
                    key += fixed_key[idx]
                    if last != -1 and m[2] != last:
                        key += _S1
                    path[KEY], path[IDX], path[LAST] = key, m[0] + m[1], m[2] + m[3]
                    append(path)
                continue
            for r, h, hs, e1, e2, g, d, m in cs:
                if used2 & r or used1 & h:
                    continue
                append([key + g + _S1 if last != -1 and hs != last else key + g,
                        e1, e2, used1 | h, used2 | r, (chosen, m)])
                key += d                                # (sic) the parent's distance, as in the jar
            if last != -1:
                key += _S1
                path[LAST] = -1
            path[KEY] = key
            path[IDX] = idx + 1
            append(path)
        if not nxt:
            nxt.append(paths[0])
    nxt.sort(key=_by_key)                               # the jar's last step: the beam, ...
    del nxt[BEAM:]
    for path in nxt:                                    # ... each path's last chunk closed, ...
        if path[LAST] != -1:
            path[KEY] += _S1
    return min(nxt, key=_by_key)                        # ... the first of the best


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
