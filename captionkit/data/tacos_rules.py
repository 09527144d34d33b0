"""Sentence -> tuple rules for TACoS (the extractor behind ``captionkit.data.tacos``; LRCN section 6
stand-in): small hand-written lexicons read off the TACoS sentences and the rules that find the main
verb (the activity) and its noun-phrase arguments (tool, object, source, target). The rules are
described in ``captionkit.data.tacos``'s module docstring, step 1.
"""
from __future__ import annotations

import re

from .tuples import NONE, SLOTS

VERBS = set("""take get put place wash rinse cut slice chop dice peel remove throw use procure clean
grab discard pour go retrieve open select set season turn return walk crack pull pick stir dry finish
juice scoop begin enter continue add break dispose gather start close fill move salt wipe mix sprinkle
twist wait unwrap scrape repeat dump trim separate drain make grind transfer flip try grate arrange
prepare choose proceed press mince quarter cover scramble push squeeze split stop heat shake cook whisk
roll strain lay find reach complete skin bring attempt tap mash wrap tear empty spread slide check hold
sweep dip fetch hollow obtain search beat spoon score fold replace halve keep collect carve brush extract
serve plate taste toss distribute pry shave oil scrub bisect divide smash preheat garnish stack lift
squirt massage melt boil fry saute rotate drop insert locate tilt core deseed discard fry spin pat
locate fetch crush zest unpack pit stem""".split())
LIGHT = {"begin", "start", "continue", "proceed", "try", "attempt", "finish", "go", "walk", "then"}
IRREGULAR_VERBS = {"took": "take", "taken": "take", "got": "get", "gotten": "get", "threw": "throw",
                   "thrown": "throw", "went": "go", "gone": "go", "broke": "break", "broken": "break",
                   "made": "make", "found": "find", "brought": "bring", "held": "hold", "laid": "lay",
                   "tore": "tear", "torn": "tear", "beaten": "beat", "began": "begin", "begun": "begin",
                   "ground": "grind", "swept": "sweep", "chose": "choose", "chosen": "choose",
                   "fried": "fry", "dried": "dry", "emptied": "empty", "tries": "try", "tried": "try"}
PARTICLES = {"out", "off", "up", "away", "down", "apart", "back"}
PHRASAL_ON = {"turn", "switch"}   # "turn on the stove": on/off is a particle, not a preposition
AUX = {"is", "are", "was", "were", "be", "been", "being", "gets", "get"}
DETERMINERS = set("""the a an his her their its some two three four both all each another one several
few any this that these those more my your our much many half""".split())
FUNCTION = DETERMINERS | set("""and or but then to of with using from on onto in into inside over under
out off up away down back by for at as while after before until when if so it them him he she they
i you we is are was were be been being has have had do does did not very also just now again carefully
slowly gently thoroughly finally first next""".split())
TOOL_PREPS = {"with", "using"}
SOURCE_PREPS = {"from"}
TARGET_PREPS = {"on", "onto", "in", "into", "to", "inside", "over"}
COMPOUNDS = {"cutting board", "chopping board", "frying pan", "garlic press", "juice press",
             "paring knife", "broad bean", "olive oil", "spice rack", "trash can", "measuring cup",
             "wooden spoon", "bell pepper", "egg shell", "cutting knife", "chef knife", "baking dish"}
PARTS = set("""end tip top bottom skin peel piece half halves rest slice side stem seed core pit leaf
shell rind part portion section chunk bit strip cube clove floret juice flesh pulp yolk white bunch
handful pair""".split())
RESULT = {"half", "halves", "piece", "slice", "strip", "cube", "chunk", "quarter", "bit", "section",
          "wedge", "round", "two", "small", "thin", "smaller"}
IRREGULAR_NOUNS = {"knives": "knife", "leaves": "leaf", "halves": "half", "loaves": "loaf",
                   "chilies": "chili", "chillies": "chilli", "people": "person", "shelves": "shelf",
                   "scissors": "scissors", "glasses": "glass", "dishes": "dish", "peas": "pea"}
STOPS = {"open", "aside", "together", "halfway", "lengthwise", "crosswise", "ready", "done"}
PERSONS = {"person", "man", "woman", "he", "she", "boy", "girl", "guy", "lady", "they", "i", "you"}


def tokenize(sentence: str) -> list[str]:
    return re.findall(r"[a-z]+|[,.;]", sentence.lower())


def verb_lemma(word: str) -> str | None:
    """A word form -> its verb lemma if it is a known verb (``VERBS``), else None."""
    if word in IRREGULAR_VERBS:
        return IRREGULAR_VERBS[word]
    cands = [word]
    if word.endswith("ies"):
        cands.append(word[:-3] + "y")
    if word.endswith("es"):
        cands.append(word[:-2])
    if word.endswith("s"):
        cands.append(word[:-1])
    if word.endswith("ied"):
        cands.append(word[:-3] + "y")
    for suf in ("ed", "ing"):
        if word.endswith(suf) and len(word) > len(suf) + 2:
            stem = word[:-len(suf)]
            cands += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                cands.append(stem[:-1])   # chopped -> chop, cutting -> cut
    return next((c for c in cands if c in VERBS), None)


def noun_lemma(word: str) -> str:
    """Plural -> singular by exceptions and suffix rules (cucumbers -> cucumber, potatoes -> potato)."""
    if word in IRREGULAR_NOUNS:
        return IRREGULAR_NOUNS[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "oes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _noun_phrase(toks: list[str], i: int) -> tuple[str | None, int]:
    """Parse a noun phrase at toks[i] -> (head lemma or None, index after the phrase)."""
    while i < len(toks) and toks[i] in DETERMINERS:
        i += 1
    run = []
    while i < len(toks) and toks[i] not in FUNCTION and toks[i] not in ",.;":
        if toks[i].endswith("ly") or toks[i] in STOPS:   # "slice it thinly", "crack eggs open"
            if run:
                break
        else:
            run.append(toks[i])
        i += 1
    if not run:
        return None, i
    head = noun_lemma(run[-1])
    if len(run) >= 2 and f"{run[-2]} {head}" in COMPOUNDS:
        head = f"{run[-2]} {head}"
    if head in PARTS and i + 1 < len(toks) and toks[i] == "of":
        inner, j = _noun_phrase(toks, i + 1)   # "the ends of the cucumber" -> cucumber
        if inner is not None:
            return inner, j
    return head, i


def _is_verb_at(toks: list[str], i: int) -> str | None:
    lemma = verb_lemma(toks[i])
    if lemma is None:
        return None
    if i > 0 and toks[i - 1] in DETERMINERS:
        return None   # "the peel", "a slice": a noun
    if i + 1 < len(toks) and toks[i + 1] in {"is", "are", "was", "were"}:
        return None   # "salt is added": the subject
    return lemma


def _main_verb(toks: list[str]) -> tuple[str | None, int, str | None]:
    """-> (verb lemma, its index, passive subject head or None)."""
    first = None
    for i, w in enumerate(toks):
        if w == "using":   # "Using the knife, slice ...": a tool phrase, not the main verb
            continue
        lemma = _is_verb_at(toks, i)
        if lemma is None:
            continue
        if first is None and lemma in LIGHT:
            first = (lemma, i)
            continue
        return lemma, i, _passive_subject(toks, i)
    if first is not None:
        return first[0], first[1], None
    return None, -1, None


def _passive_subject(toks: list[str], i: int) -> str | None:
    if i < 2 or toks[i - 1] not in {"is", "are", "was", "were", "been"}:
        return None
    j = i - 1
    while j > 0 and toks[j - 1] in {"is", "are", "was", "were", "has", "have", "been", "being"}:
        j -= 1
    k = j
    while k > 0 and toks[k - 1] not in FUNCTION and toks[k - 1] not in ",.;":
        k -= 1
    head, _ = _noun_phrase(toks, k) if k < j else (None, j)
    return None if head in PERSONS else head


def extract_tuple(sentence: str) -> dict[str, str]:
    """A sentence -> its gold tuple {activity, tool, object, source, target} (``<none>`` if absent)."""
    toks = tokenize(sentence)
    out = {s: NONE for s in SLOTS}
    verb, vi, passive_obj = _main_verb(toks)
    if "using" in toks:   # "using X" anywhere names the tool
        tool, _ = _noun_phrase(toks, toks.index("using") + 1)
        out["tool"] = tool or NONE
    if verb is None:
        head, _ = _noun_phrase(toks, 0)
        if head and head not in PERSONS:
            out["object"] = head
        return out
    i = vi + 1
    if i < len(toks) and (toks[i] in PARTICLES or (verb in PHRASAL_ON and toks[i] in {"on", "off"})):
        if not (toks[i] == "out" and i + 1 < len(toks) and toks[i + 1] == "of"):
            verb, i = f"{verb} {toks[i]}", i + 1
    if i + 1 < len(toks) and toks[i] == "and" and _is_verb_at(toks, i + 1):
        i += 2   # "peels and slices the plum": the object is shared
    if passive_obj is not None:
        out["object"] = passive_obj
    else:
        head, i = _noun_phrase(toks, i)
        if head is not None and head not in PERSONS:
            out["object"] = head
    if i < len(toks) and toks[i] in PARTICLES and " " not in verb:   # "take a knife out (of ...)"
        verb = f"{verb} {toks[i]}"
        if toks[i] != "out" or i + 1 >= len(toks) or toks[i + 1] != "of":
            i += 1
    out["activity"] = verb
    _arguments(toks, i, out)
    return out


def _arguments(toks: list[str], i: int, out: dict[str, str]) -> None:
    """Fill tool / source / target from the prepositional phrases after the object."""
    while i < len(toks):
        w = toks[i]
        if w in ",.;" or (w in {"and", "to", "then"} and i + 1 < len(toks) and _is_verb_at(toks, i + 1)):
            break   # the next clause
        slot, skip = None, 1
        if w in TOOL_PREPS:
            slot = "tool"
        elif w in SOURCE_PREPS or (w in {"out", "off"} and i + 1 < len(toks) and toks[i + 1] == "of"):
            slot, skip = "source", (1 if w in SOURCE_PREPS else 2)
        elif w in TARGET_PREPS:
            slot = "target"
        if slot is None:
            i += 1
            continue
        head, j = _noun_phrase(toks, i + skip)
        if head is not None and out[slot] == NONE and head not in RESULT and head not in PERSONS:
            out[slot] = head
        i = max(j, i + skip)


# ----------------------------------------------------------------------------- CRF noise model
