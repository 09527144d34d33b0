"""METEOR 1.5's English resources, read at run time from the installed pycocoevalcap.

The function-word list, the non-breaking prefixes and the WordNet synonym files are read from inside
``meteor-1.5.jar`` (a zip) with ``zipfile``; the paraphrase table ``data/paraphrase-en.gz`` (5.3 M
entries, Denkowski & Lavie 2010/2014) is converted once (1-2 minutes) into a cache of flat token
arrays in ``.npy`` files (memory-mapped, no pickle) under ``$XDG_CACHE_HOME/captionkit/meteor``. A
scoring run then keeps only the table entries whose two sides both occur as n-grams in the captions
being scored (binary searches of sorted phrase hashes), so the rest never becomes Python objects.
Entries keep their file order: the jar's matcher tries paraphrases in that order, and the order
decides ties in the alignment search.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import zipfile
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_PHRASE = 7                      # longest phrase in paraphrase-en.gz
_P = np.uint64(1000003)             # polynomial phrase hash over (token id + 1), mod 2**64
CACHE_VERSION = 3


def meteor_dir() -> Path:
    """pycocoevalcap's meteor folder (holds meteor-1.5.jar and data/paraphrase-en.gz)."""
    import pycocoevalcap
    return Path(list(pycocoevalcap.__path__)[0]) / "meteor"


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "captionkit" / "meteor"


def _jar_text(name: str) -> str:
    with zipfile.ZipFile(meteor_dir() / "meteor-1.5.jar") as z:
        return z.read(name).decode("utf-8")


def _lines(text: str) -> list[str]:
    """Java BufferedReader.readLine semantics: split on \\n, \\r\\n or \\r; no empty last line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@lru_cache(maxsize=1)
def function_words() -> frozenset[str]:
    """The 'function/english.words' list (one word a line)."""
    return frozenset(_lines(_jar_text("function/english.words")))


@lru_cache(maxsize=1)
def nonbreaking_prefixes() -> dict[str, int]:
    """'nonbreaking/english.prefixes': word -> 1 (any context) or 2 (only before a number)."""
    out: dict[str, int] = {}
    for line in _lines(_jar_text("nonbreaking/english.prefixes")):
        toks = line.split()
        if not toks or toks[0].startswith("#"):
            continue
        out[toks[0]] = 2 if len(toks) > 1 and toks[1] == "#NUMERIC_ONLY#" else 1
    return out


@dataclass
class Synonyms:
    """WordNet synsets as METEOR's SynonymDictionary uses them (relations are never loaded by 1.5)."""
    synset_lines: dict[str, str]          # word -> its line of synset ids (parsed lazily)
    bases: dict[str, list[str]]           # inflected form -> base forms (the exceptions file)


@lru_cache(maxsize=1)
def synonyms() -> Synonyms:
    syn = _lines(_jar_text("synonym/english.synsets"))
    exc = _lines(_jar_text("synonym/english.exceptions"))
    bases: dict[str, list[str]] = {}
    for base, forms in zip(exc[0::2], exc[1::2]):
        for form in forms.split():
            bases.setdefault(form, []).append(base)
    return Synonyms(dict(zip(syn[0::2], syn[1::2])), bases)


# ---------------------------------------------------------------- paraphrase table (cached)

def _phrase_hash(tok: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(N,) uint64 hash of each phrase tok[off[k]:off[k+1]], the same as ``ngram_hashes``."""
    lens = np.diff(off)
    h = np.zeros(len(lens), dtype=np.uint64)
    for k in range(int(lens.max(initial=0))):
        live = lens > k
        h[live] = h[live] * _P + (tok[off[:-1][live] + k].astype(np.uint64) + np.uint64(1))
    return h


def _convert(src_path: Path, dst: Path) -> None:
    """paraphrase-en.gz (prob / phrase / paraphrase, three lines an entry) -> a folder of .npy arrays.

    File order is kept. Tokens are word ids (``vocab.txt`` holds the words), ``*_off`` the phrase
    boundaries, ``tgt_hash`` each paraphrase's hash and ``src_sorted``/``src_order`` the phrase
    hashes sorted (with their entry numbers), so selecting the entries of a corpus is a few binary
    searches per corpus n-gram rather than per table entry.
    """
    from tqdm import tqdm
    vocab: dict[str, int] = {}
    sides = [(array("i"), array("q", [0])), (array("i"), array("q", [0]))]
    with gzip.open(src_path, "rt", encoding="utf-8") as f, \
            tqdm(desc="METEOR paraphrase table -> cache (once)", unit=" entries", unit_scale=True) as bar:
        for n, line in enumerate(f):
            k = n % 3
            if k == 0:
                if n % 300_000 == 0:
                    bar.update(100_000 if n else 0)
                continue
            tok, off = sides[k - 1]
            tok.extend(vocab.setdefault(w, len(vocab)) for w in line.split())
            off.append(len(tok))
    tmp = dst.with_name(f"{dst.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tok_type = np.uint16 if len(vocab) < 65536 else np.int32
    for name, (tok, off) in zip(("src", "tgt"), sides):
        t, o = np.frombuffer(tok, dtype=np.int32), np.frombuffer(off, dtype=np.int64)
        np.save(tmp / f"{name}_tok.npy", t.astype(tok_type))
        np.save(tmp / f"{name}_off.npy", o)
        h = _phrase_hash(t, o)
        if name == "tgt":
            np.save(tmp / "tgt_hash.npy", h)
        else:
            order = np.argsort(h, kind="stable")
            np.save(tmp / "src_sorted.npy", h[order])
            np.save(tmp / "src_order.npy", order.astype(np.int32))
    (tmp / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    try:
        os.replace(tmp, dst)
    except OSError:                   # another process converted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dst / "vocab.txt").is_file():
            raise


def _cache_path(src_path: Path) -> Path:
    st = src_path.stat()
    key = hashlib.sha1(f"{src_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_VERSION}".encode())
    return cache_dir() / f"paraphrase-en-{key.hexdigest()[:12]}"


@lru_cache(maxsize=1)
def paraphrase_arrays() -> dict:
    """The converted table (memory-mapped) and its vocabulary; converts once (~1 min) if needed."""
    src = meteor_dir() / "data" / "paraphrase-en.gz"
    if not src.is_file():
        raise FileNotFoundError(f"METEOR paraphrase table not found: {src}")
    dst = _cache_path(src)
    if not (dst / "vocab.txt").is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        _convert(src, dst)
    out = {p.stem: np.load(p, mmap_mode="r") for p in dst.glob("*.npy")}
    words = (dst / "vocab.txt").read_text(encoding="utf-8").split("\n")
    out["words"] = words
    out["vocab"] = {w: i for i, w in enumerate(words)}
    return out


def ngram_hashes(ids: list[list[int]]) -> np.ndarray:
    """Sorted unique hashes of every n-gram (n <= MAX_PHRASE) of the sentences, in table ids.

    Words outside the table (id -1) break n-grams: no phrase can contain them.
    """
    lens = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter((w for s in ids for w in s), dtype=np.int64, count=int(lens.sum()))
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    pos = np.arange(len(flat)) - starts                      # position in its sentence
    remaining = np.repeat(lens, lens) - pos                  # words from here to the end
    out = []
    h = np.zeros(len(flat), dtype=np.uint64)
    ok = np.ones(len(flat), dtype=bool)
    for n in range(MAX_PHRASE):
        # h[j] = hash of the (n+1)-gram starting at j
        live = remaining > n
        nxt = np.zeros(len(flat), dtype=np.int64)
        nxt[live] = flat[np.nonzero(live)[0] + n]
        ok &= live & (nxt >= 0)
        h = h * _P + (nxt.astype(np.uint64) + np.uint64(1))
        if not ok.any():
            break
        out.append(h[ok])
    if not out:
        return np.zeros(0, dtype=np.uint64)
    h = np.sort(np.concatenate(out))          # (np.unique hashes uint64: far slower than a sort)
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = h[1:] != h[:-1]
    return h[keep]


def _phrases(tok, off, rows: np.ndarray, words: list[str]) -> list[tuple]:
    """The phrases of the given entries as word tuples (one vectorised gather)."""
    lo, hi = np.asarray(off[rows]), np.asarray(off[rows + 1])
    lens = hi - lo
    ends = np.cumsum(lens)
    flat = np.asarray(tok[np.repeat(lo, lens) + (np.arange(ends[-1] if len(ends) else 0)
                                                   - np.repeat(ends - lens, lens))]).tolist()
    flat = [words[i] for i in flat]
    return [tuple(flat[e - n:e]) for e, n in zip(ends.tolist(), lens.tolist())]


def paraphrases_for(sentences: list[tuple] | list[list[str]]) -> dict[tuple, list[tuple]]:
    """phrase -> [paraphrase, ...] (file order, duplicates kept) for the entries whose both sides
    occur as n-grams of the given tokenized sentences; all other entries can never match there."""
    t = paraphrase_arrays()
    vocab = t["vocab"]
    ids = [[vocab.get(w, -1) for w in s] for s in sentences]
    grams = ngram_hashes(ids)
    if len(grams) == 0:
        return {}
    srt = t["src_sorted"]
    lo, hi = np.searchsorted(srt, grams, "left"), np.searchsorted(srt, grams, "right")
    lens = hi - lo
    pos = np.repeat(lo, lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    rows = np.sort(np.asarray(t["src_order"][pos], dtype=np.int64))       # file order
    h = t["tgt_hash"][rows]
    at = np.minimum(np.searchsorted(grams, h), len(grams) - 1)
    rows = rows[grams[at] == h]
    words = t["words"]
    src = _phrases(t["src_tok"], t["src_off"], rows, words)
    tgt = _phrases(t["tgt_tok"], t["tgt_off"], rows, words)
    out: dict[tuple, list[tuple]] = {}
    for a, b in zip(src, tgt):
        out.setdefault(a, []).append(b)
    return out
