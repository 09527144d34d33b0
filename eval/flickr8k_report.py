"""Rendering for ``eval/flickr8k_tables.py``: the Markdown tables and the LRCN findings (held / not held)."""
from __future__ import annotations

SCORE_KEYS = ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def fmt_row(name: str, r: dict) -> str:
    s, st = r["scores"], r["stats"]
    cells = [name, r["label"], str(r["images"])]
    cells += [f"{s[k]:.3f}" if k in s else "-" for k in SCORE_KEYS]
    cells += [f"{100 * st['in_training']:.1f}%", f"{100 * st['unique_captions']:.1f}%",
              f"{st['vocab_generated']:.0f}", f"{100 * st['vocab_coverage']:.1f}%", f"{st['avg_length']:.1f}"]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| model | decoding | images | BLEU-1 | BLEU-4 | METEOR | ROUGE-L | CIDEr-D | verbatim from train "
          "| unique | vocab used | ref-vocab coverage | words |\n" + "|---" * 13 + "|")


def markdown(args, result: dict) -> str:
    lines = ["# LRCN captioning tables at Flickr8k scale (dev split)", "",
             "Made by `eval/flickr8k_tables.py`; do not edit by hand. Official pycocoevalcap scorers "
             "(BLEU, METEOR, ROUGE-L, CIDEr-D) on the official Flickr8k **dev** split (the test images are "
             "withheld here), frozen ImageNet MobileNetV2 features. `verbatim from train`: share of generated "
             "captions that occur word for word among the training captions; `vocab used`: distinct words "
             "generated; `ref-vocab coverage`: share of the dev references' vocabulary ever generated.", "",
             "Command:", "", "```", result["command"], "```", ""]
    lines += ["## Training", "", "| model | recipe | checkpoint | epochs (best) | best dev CIDEr-D (greedy, fast) "
              "| train wall | train CPU | command |", "|---|---|---|---|---|---|---|---|"]
    for name, m in result["models"].items():
        hist = m.get("history", [])
        best = max(hist, key=lambda h: h["val_CIDEr"]) if hist else {}
        wall = f"{m['train_wall_s'] / 60:.1f} min" if m.get("train_wall_s") else \
            (f"{hist[-1]['wall_s'] / 60:.1f} min (log)" if hist else "reused")
        cpu = f"{m['train_cpu_s'] / 60:.1f} min" if m.get("train_cpu_s") else "-"
        lines.append(f"| {name} | `{m['recipe']}` | `{m['checkpoint']}` | {len(hist)} ({best.get('epoch', '-')}) | "
                     f"{best.get('val_CIDEr', float('nan')):.3f} | {wall} | {cpu} | " +
                     (f"`{m.get('train_command', 'captionkit train ' + m['recipe'])}` |" if m["recipe"].endswith(".toml")
                      else "config stored in the checkpoint |"))
    lines += ["", "## Table A: architecture ablation (LRCN Table 5 style)", "", HEADER]
    for name, m in result["models"].items():
        lines += [fmt_row(name, r) for r in m["ablation"]]
    if result.get("generation"):
        g = result["generation"]
        lines += ["", f"## Table B: generation strategies, {g['model']} (LRCN Table 6 style)", "",
                  "T is LRCN's inverse temperature: samples are drawn from softmax(T * logits); best-of-N keeps "
                  "the most probable of N samples (sampling seed 0).", "", HEADER]
        lines += [fmt_row(g["model"], r) for r in g["rows"]]
    lines += ["", "## Row commands", "", "Each row equals one `captionkit evaluate` run:", "", "```"]
    seen = set()
    for rows in [m["ablation"] for m in result["models"].values()] + [result.get("generation", {}).get("rows", [])]:
        for r in rows:
            if r["command"] not in seen:
                seen.add(r["command"])
                lines.append(r["command"])
    lines += ["```", ""]
    if result.get("notes"):
        lines += ["## LRCN's findings, checked (computed by the script from the rows above)", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


def _find(rows: list[dict], label: str, images: int | None = None) -> dict | None:
    for r in rows:
        if r["label"] == label and (images is None or r["images"] == images):
            return r
    return None


def _cmp(metric: str, a: dict, b: dict) -> str:
    return f"{metric} {a['scores'][metric]:.3f} vs {b['scores'][metric]:.3f}"


def findings(result: dict, beam: int) -> list[str]:
    """LRCN's claims checked against the measured rows: one sentence each, 'held' or 'did not hold'."""
    out, models = [], result["models"]

    def verdict(ok: bool) -> str:
        return "**held**" if ok else "**did not hold**"

    def both(a: dict, b: dict) -> str:
        return f"{_cmp('CIDEr', a, b)}, {_cmp('Bleu_4', a, b)}"

    if "LRCN-2f" in models and "RNN-2f" in models:
        for label in ("greedy", f"beam {beam}"):
            a, b = _find(models["LRCN-2f"]["ablation"], label), _find(models["RNN-2f"]["ablation"], label)
            out.append(f"LSTM > RNN (2f, {label}): {verdict(a['scores']['CIDEr'] > b['scores']['CIDEr'])} "
                       f"({both(a, b)}).")
    arch = [n for n in ("LRCN-1u", "LRCN-2u", "LRCN-2f") if n in models]
    if len(arch) > 1:
        for label in ("greedy", f"beam {beam}"):
            rows = {n: _find(models[n]["ablation"], label) for n in arch}
            order = sorted(arch, key=lambda n: -rows[n]["scores"]["CIDEr"])
            ok = order[0] == "LRCN-2f"
            out.append(f"LRCN-2f best of {'/'.join(arch)} ({label}, CIDEr-D): {verdict(ok)}; order "
                       + " > ".join(f"{n} {rows[n]['scores']['CIDEr']:.3f}" for n in order)
                       + " (BLEU-4 " + ", ".join(f"{n} {rows[n]['scores']['Bleu_4']:.3f}" for n in arch) + ").")
    for name, m in models.items():
        g = [r for r in m["ablation"] if r["label"] == "greedy"][-1]  # greedy on the sampling images
        s = _find(m["ablation"], "best-of-100, T=1.5")
        b = _find(m["ablation"], f"beam {beam}")
        g_all = _find(m["ablation"], "greedy")
        out.append(f"{name}: beam {beam} > greedy {verdict(b['scores']['CIDEr'] > g_all['scores']['CIDEr'])} "
                   f"({both(b, g_all)}); best-of-100 at T=1.5 > greedy "
                   f"{verdict(s['scores']['CIDEr'] > g['scores']['CIDEr'])} ({both(s, g)}, {s['images']} images).")
    full = [(n, r) for n, m in models.items() for r in m["ablation"] if r["decode"]["method"] == "beam"
            and r["images"] == 1000]
    full += [(result["generation"]["model"], r) for r in result.get("generation", {}).get("rows", [])
             if r["decode"]["method"] == "beam" and r["images"] == 1000 and r["decode"]["beam_size"] > 1]
    if full:
        n, r = max(full, key=lambda x: x[1]["scores"]["CIDEr"])
        ok = r["scores"]["Bleu_4"] >= 0.19 and r["scores"]["CIDEr"] >= 0.46
        out.insert(0, f"Issue target (beam search, all 1000 dev images: BLEU-4 >= 0.19 and CIDEr-D >= 0.46): "
                      f"{'**reached**' if ok else '**not reached**'}; best beam row {n} {r['label']}: "
                      f"BLEU-4 {r['scores']['Bleu_4']:.3f}, CIDEr-D {r['scores']['CIDEr']:.3f}.")
    gen = result.get("generation")
    if gen:
        rows = gen["rows"]
        beams = {k: _find(rows, f"beam {k}") for k in (1, 2, 3, 5, 10)}
        best_k = max(beams, key=lambda k: beams[k]["scores"]["CIDEr"])
        mid = max((beams[3], beams[5]), key=lambda r: r["scores"]["CIDEr"])
        out.append(f"Beam 3-5 beats greedy: {verdict(mid['scores']['CIDEr'] > beams[1]['scores']['CIDEr'])} "
                   f"({mid['label']}: {both(mid, beams[1])}); widest is not best: "
                   f"{verdict(best_k < 10)} (best width {best_k}, beam 10 CIDEr-D "
                   f"{beams[10]['scores']['CIDEr']:.3f}).")
        temps = {t: _find(rows, f"sample N=100, T={t:g}") for t in (1.0, 1.5, 2.0)}
        temps[2.0] = temps[2.0] or _find(rows, "sample N=100, T=2")
        best_t = max(temps, key=lambda t: temps[t]["scores"]["CIDEr"])
        out.append(f"T = 1.5 best for best-of-100: {verdict(best_t == 1.5)} (CIDEr-D "
                   + ", ".join(f"T={t:g} {temps[t]['scores']['CIDEr']:.3f}" for t in temps) + ").")
        ns = {n: _find(rows, f"sample N={n}, T=2") for n in (1, 10, 25, 100)}
        out.append("Best-of-N at T=2 by N (CIDEr-D): " + ", ".join(
            f"N={n} {ns[n]['scores']['CIDEr']:.3f}" for n in ns) + "; verbatim-from-training share "
            + ", ".join(f"N={n} {100 * ns[n]['stats']['in_training']:.0f}%" for n in ns)
            + f" vs beam {best_k} {100 * beams[best_k]['stats']['in_training']:.0f}% and greedy "
            f"{100 * beams[1]['stats']['in_training']:.0f}%.")
    return out


