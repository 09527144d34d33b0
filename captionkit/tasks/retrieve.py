"""The retrieval experiment behind ``captionkit retrieve``: Flickr8k images + captions -> sentence
vectors (RNN-FV regression / classification, mean vector, GMM-FV) or LRCN likelihoods -> CCA ->
ranking metrics (Lev et al. ECCV 2016 Table 3; LRCN Table 4).

Protocol: the sentence encoder (LM, GMM, FIM, PCA) is fit on all training sentences; the CCA
regularisation and eigenvalue power are chosen on ``val_images`` training images held out of the CCA
fit; the CCA is then refit on all training images with the chosen values, and we report on
``report_split`` (Flickr8k "dev": the official test images are withheld here).
Shape legend: N images, M sentences, D word-vector size, F sentence-vector size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.captions import CaptionItem, load_flickr8k
from ..data.wordvec import UnknownReport, embed_sentences, read_word_vectors
from ..errors import UserError
from ..fisher.rnn import (FisherNormalizer, SentenceLM, SentenceLMConfig, describe, fisher_vectors,
                     sample_coordinates, train_lm)
from ..fisher.encode import SetEncoderConfig
from ..fisher.gmm import fit_gmm, gmm_fisher_vectors, mean_vectors
from .. import retrieval as R

METHODS = ("rnnfv_reg", "rnnfv_cls", "mean", "gmmfv", "lrcn")
IMAGE_ENCODERS = ("global", "sets")


@dataclass
class NormConfig:
    fim: bool = True                    # divide by sqrt(FIM diagonal) (RNN-FV only; GMM-FV has it built in)
    alpha: float = 0.5                  # power normalisation exponent (1 = off)
    l2: bool = True
    pca_dim: int = 0                    # 0 = no PCA; else fit on training sentence vectors only
    sample_coords: int = 20000          # classification RNN-FV: random coordinates kept (0 = all)
    min_count: int = 5                  # classification LM vocabulary: train words seen >= min_count


@dataclass
class GMMConfig:
    k: int = 30                         # components (Klein et al. use 30 for word2vec)
    iters: int = 50
    max_points: int = 100000            # word occurrences sampled for EM


@dataclass
class CCAConfig:
    regs: list[float] = field(default_factory=lambda: [1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0])
    powers: list[float] = field(default_factory=lambda: [0.0, 1.0, 4.0])
    dim: int = 0                        # 0 = all canonical dimensions


@dataclass
class LRCNConfig:
    checkpoint: str = ""                # a trained captioner checkpoint (tasks.loading.load_checkpoint)
    normalise: str = "none"             # annotation scores: none | length | prior
    pairs_per_batch: int = 4096


@dataclass
class RetrieveConfig:
    data_root: str = "../shared/data"   # relative to the current directory
    method: str = "rnnfv_reg"           # rnnfv_reg | rnnfv_cls | mean | gmmfv | lrcn
    report_split: str = "dev"           # Flickr8k split to report on (test images are withheld here)
    val_images: int = 1000              # training images held out of the CCA fit for model selection
    train_images: int = 0               # CCA uses only the first N training images (0 = all); the
                                        # sentence encoders are always fit on every training sentence
    subset: int = 0                     # report on the first N images of report_split only (0 = all)
    word_vectors: str = "glove/glove.6B.50d.subset.txt"   # under data_root, or absolute
    encoder: str = "mobilenet_v2"
    encoder_weights: str = "weights/mobilenet_v2_imagenet_features.pth"
    image_encoder: str = "global"       # "global": the CNN's pooled vector; "sets": its K x K local
                                        # descriptors encoded by ``image`` (FV-VAE or a baseline)
    image: SetEncoderConfig = field(default_factory=SetEncoderConfig)
    keywords: int = 0                   # FV-VAE labels: multi-hot of the N most frequent caption content
                                        # words of each training image (0 = none; needs image.vae.lambda_cls > 0)
    feature_cache: str = ".cache/captionkit/features"
    out: str = ""                       # JSON path; "" = runs/retrieve/<method>.json
    threads: int = 2
    lm: SentenceLMConfig = field(default_factory=SentenceLMConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    gmm: GMMConfig = field(default_factory=GMMConfig)
    cca: CCAConfig = field(default_factory=CCAConfig)
    lrcn: LRCNConfig = field(default_factory=LRCNConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.report_split not in ("dev", "test"):
            raise ValueError(f"report_split must be dev or test, got {self.report_split!r}")
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder must be one of {IMAGE_ENCODERS}, got {self.image_encoder!r}")


def _path(root: str, p: str) -> Path:
    return Path(p) if Path(p).is_absolute() else Path(root) / p


def load_splits(cfg: RetrieveConfig) -> dict[str, list[CaptionItem]]:
    """Flickr8k train and report split items (the report split cut to ``subset`` images if set)."""
    d = _path(cfg.data_root, "flickr8k")
    if not d.is_dir():
        raise UserError(f"data_root={cfg.data_root!r}: no flickr8k/ folder there (set data_root)")
    split = {"dev": "dev", "test": "test"}[cfg.report_split]
    items = {s: load_flickr8k(d / "Flickr8k.token.txt", d / f"Flickr_8k.{f}Images.txt", d / "images")
             for s, f in (("train", "train"), ("report", split))}
    if cfg.subset:
        items["report"] = items["report"][: cfg.subset]
    return items


def image_features(cfg: RetrieveConfig, items: list[CaptionItem], log=print,
                   pool: str = "avg") -> torch.Tensor:
    """Frozen CNN features (N, Dx), or with pool="grid" (N, K*K, C) in fp16, through the on-disk cache."""
    from ..encoders import EncoderConfig, build_image_encoder
    from ..features import extract_features, file_stamp, load_image
    enc = build_image_encoder(EncoderConfig(name=cfg.encoder, pool=pool,
                                            weights=str(_path(cfg.data_root, cfg.encoder_weights))))
    files = {it.image_id: it.file for it in items}
    feats, _ = extract_features(enc, list(files), lambda i: load_image(files[i]), cfg.feature_cache, 64,
                                stamp=lambda i: file_stamp(files[i]))
    return torch.stack([feats[it.image_id] for it in items])  # (N, Dx) or (N, K*K, C)


def image_vectors(cfg: RetrieveConfig, train: list[CaptionItem], report: list[CaptionItem],
                  log=print) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The image side: pooled CNN vectors, or local descriptors -> ``cfg.image`` set encoder (fit on
    the training images only) -> (N_train, Dx), (N_report, Dx), info."""
    if cfg.image_encoder == "global":
        return image_features(cfg, train, log), image_features(cfg, report, log), {}
    from ..fisher.encode import SetEncoder, describe
    grid_tr, grid_te = image_features(cfg, train, log, "grid"), image_features(cfg, report, log, "grid")
    labels = keyword_labels(train, cfg.keywords) if cfg.keywords else None
    t0 = time.time()
    enc = SetEncoder(cfg.image).fit(grid_tr, labels, log=log)
    fit_s, t0 = time.time() - t0, time.time()
    a, b = enc.encode(grid_tr), enc.encode(grid_te)
    info = {"encoder": describe(cfg.image), "descriptors": list(grid_tr.shape[1:]), "dim": a.size(1),
            "fit_seconds": fit_s, "encode_ms_per_image": 1000 * (time.time() - t0) / (len(a) + len(b))}
    log(f"  image vectors: {a.size(1)}-d ({info['encode_ms_per_image']:.2f} ms per image to encode)")
    return a, b, info


STOPWORDS = frozenset("""a an the and or of in on at to with from by for into onto over under near is are
    while its his her their it they he she two three one some other another this that there as up down
    out off through front next back top each""".split())


def keyword_labels(items: list[CaptionItem], n: int) -> torch.Tensor:
    """Caption-derived multi-label targets (N, n): does any caption of the image use keyword k, for the
    n most frequent non-stopword words over the images' captions (counted once per image)."""
    from collections import Counter
    words = [{w for c in it.captions for w in c.lower().replace(".", " ").split()
              if w.isalpha() and w not in STOPWORDS} for it in items]
    counts = Counter(w for ws in words for w in ws)
    vocab = sorted(counts, key=lambda w: (-counts[w], w))[:n]  # ties alphabetical: reproducible
    index = {w: k for k, w in enumerate(vocab)}
    labels = torch.zeros(len(items), len(vocab))
    for i, ws in enumerate(words):
        labels[i, [index[w] for w in ws if w in index]] = 1
    return labels


def flatten(items: list[CaptionItem]) -> tuple[list[str], torch.Tensor]:
    """Items -> all captions (M,) and the index of each caption's image (M,)."""
    caps = [c for it in items for c in it.captions]
    s2i = torch.repeat_interleave(torch.arange(len(items)), torch.tensor([len(it.captions) for it in items]))
    return caps, s2i


def _class_targets(train_words, all_words, min_count):
    """Word lists -> per-sentence class ids (T_i,) over the train vocabulary (+ one UNK class)."""
    from collections import Counter
    counts = Counter(w for ws in train_words for w in ws)
    vocab = {w: i for i, w in enumerate(sorted(w for w, n in counts.items() if n >= min_count))}
    unk = len(vocab)
    return len(vocab) + 1, [[torch.tensor([vocab.get(w, unk) for w in ws], dtype=torch.long) for ws in group]
                            for group in all_words]


def sentence_vectors(cfg: RetrieveConfig, train_caps, report_caps, log=print) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train and report captions -> normalised sentence vectors (M_train, F), (M_report, F), info."""
    wv = read_word_vectors(_path(cfg.data_root, cfg.word_vectors))
    rep = UnknownReport()
    tr, tr_words, rep = embed_sentences(train_caps, wv, rep)
    te, te_words, rep = embed_sentences(report_caps, wv, rep)
    log(f"  word vectors: {len(wv)} x {wv.dim}; {rep.summary()}")
    info = {"unknown_words": rep.summary()}
    norm = FisherNormalizer(fim=cfg.norm.fim, alpha=cfg.norm.alpha, l2=cfg.norm.l2, pca_dim=cfg.norm.pca_dim or None)
    if cfg.method == "mean":
        norm.fim = False
        a, b = mean_vectors(tr, wv.dim), mean_vectors(te, wv.dim)
    elif cfg.method == "gmmfv":
        norm.fim = False  # the GMM-FV formula already includes the analytic FIM scaling
        words = torch.cat([s for s in tr if s.size(0)])
        pick = torch.randperm(words.size(0), generator=torch.Generator().manual_seed(0))[: cfg.gmm.max_points]
        gmm = fit_gmm(words[pick], cfg.gmm.k, cfg.gmm.iters, log=log)
        a, b = gmm_fisher_vectors(gmm, tr), gmm_fisher_vectors(gmm, te)
    else:
        torch.manual_seed(cfg.lm.seed)
        tr_y = te_y = None
        vocab_size = None
        if cfg.method == "rnnfv_cls":
            vocab_size, (tr_y, te_y) = _class_targets(tr_words, [tr_words, te_words], cfg.norm.min_count)
        lm = SentenceLM(cfg.lm, wv.dim, vocab_size)
        coords = sample_coordinates(lm, cfg.norm.sample_coords) if (
            cfg.method == "rnnfv_cls" and 0 < cfg.norm.sample_coords < lm.fv_dim) else None
        log(f"  {describe(lm, coords)}")
        t0 = time.time()
        info["lm_loss"] = train_lm(lm, tr, tr_y, log=log)
        info["lm_seconds"] = time.time() - t0
        t0 = time.time()
        a, b = fisher_vectors(lm, tr, tr_y, coords), fisher_vectors(lm, te, te_y, coords)
        info["fv_seconds"] = time.time() - t0
        info["fv_sentences_per_s"] = (len(tr) + len(te)) / info["fv_seconds"]
    norm.fit(a)
    a, b = norm.transform(a), norm.transform(b)
    log(f"  sentence vectors: {a.size(1)}-d")
    info["sentence_dim"] = a.size(1)
    return a, b, info


def run_cca(cfg: RetrieveConfig, img_tr, sent_tr, s2i_tr, img_te, sent_te, s2i_te, log=print) -> dict:
    """Select (reg, power) on held-out training images, refit on all of train, score the report split."""
    n_fit = len(img_tr) - cfg.val_images
    if n_fit <= 0:
        raise UserError(f"val_images={cfg.val_images} leaves no training images for the CCA fit")
    fit_mask = s2i_tr < n_fit
    t0 = time.time()  # the eigendecompositions below take minutes on large Fisher vectors: say so first
    log(f"  CCA: fitting {len(cfg.cca.regs)} regularisation(s) on {n_fit} images ({int(fit_mask.sum())} "
        f"sentences, {img_tr.size(1)}-d x {sent_tr.size(1)}-d), selecting on {cfg.val_images} held-out images ...")
    reg, power, table = R.select_cca(img_tr[:n_fit], sent_tr[fit_mask], s2i_tr[fit_mask], img_tr[n_fit:],
                                     sent_tr[~fit_mask], s2i_tr[~fit_mask] - n_fit, cfg.cca.regs, cfg.cca.powers,
                                     cfg.cca.dim or None, log=log)
    log(f"  CCA: refitting reg={reg:g} on all {len(img_tr)} training images ...")
    (cca,) = R.fit_cca_path(img_tr[s2i_tr], sent_tr, [reg], cfg.cca.dim or None)
    log(f"  CCA: done in {time.time() - t0:.0f} s")
    cca.power = power
    px, py = cca.project_x(img_te), cca.project_y(sent_te)
    metrics = R.retrieval_metrics(R.cosine_similarity(px, py), s2i_te)
    metrics["sentence_similarity"] = R.sentence_similarity(py, s2i_te)
    return {"metrics": metrics, "selected": {"reg": reg, "power": power}, "selection": table}


def load_captioner(path: str, items: list[CaptionItem], cache_dir: str):
    """A trained captioner checkpoint -> (object with vocab/init_state/step, its CNN features (N, D)).

    The features come from the captioner's OWN encoder (through the feature cache, under the
    identity recorded at training time), so they always match what it was trained on.
    """
    from types import SimpleNamespace

    from ..features import extract_features, file_stamp, load_image
    from .loading import load_checkpoint

    task, model = load_checkpoint(path, "caption")
    files = {it.image_id: it.file for it in items}
    feats, _ = extract_features(model.encoder, list(files), lambda i: load_image(files[i]), cache_dir, 64,
                                stamp=lambda i: file_stamp(files[i]))
    visual = torch.stack([feats[it.image_id] for it in items])  # (N, D)
    return SimpleNamespace(vocab=task.vocab, init_state=model.init_state, step=model.step), visual


def run_lrcn(cfg: RetrieveConfig, img_items, caps_te, s2i_te, log=print) -> dict:
    """Rank by log p(caption | image) under a trained captioner (no CCA, no training here)."""
    if not cfg.lrcn.checkpoint:
        raise UserError("method='lrcn' needs lrcn.checkpoint (a trained captioner checkpoint)")
    captioner, img_te = load_captioner(cfg.lrcn.checkpoint, img_items, cfg.feature_cache)
    logp = R.likelihood_matrix(captioner, img_te, caps_te, cfg.lrcn.pairs_per_batch, log=log)
    _, lengths = R.encode_captions(captioner.vocab, caps_te)
    metrics = {"annotation": R.retrieval_metrics(R.normalise_likelihood(logp, lengths, cfg.lrcn.normalise),
                                                 s2i_te)["annotation"],
               "search": R.retrieval_metrics(logp, s2i_te)["search"]}  # per-sentence ranking: no correction needed
    return {"metrics": metrics, "selected": {"normalise": cfg.lrcn.normalise}}


def run_experiment(cfg: RetrieveConfig, log=print) -> dict:
    """The whole recipe -> a JSON-able result dict."""
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    items = load_splits(cfg)
    log(f"Flickr8k: {len(items['train'])} train images, {len(items['report'])} {cfg.report_split} images"
        + (f" (subset: first {cfg.subset})" if cfg.subset else ""))
    caps_te, s2i_te = flatten(items["report"])
    result = {"method": cfg.method, "report_split": cfg.report_split, "images": len(items["report"]),
              "sentences": len(caps_te), "subset": cfg.subset}
    if cfg.method == "lrcn":
        result.update(run_lrcn(cfg, items["report"], caps_te, s2i_te, log))
    else:
        caps_tr, s2i_tr = flatten(items["train"])
        sent_tr, sent_te, info = sentence_vectors(cfg, caps_tr, caps_te, log)
        result["info"] = info
        if cfg.train_images:  # CCA on the first N training images only (their 5N sentences)
            keep = s2i_tr < cfg.train_images
            sent_tr, s2i_tr = sent_tr[keep], s2i_tr[keep]
            items["train"] = items["train"][: cfg.train_images]
            result["train_images"] = len(items["train"])
        img_tr, img_te, result["image"] = image_vectors(cfg, items["train"], items["report"], log)
        result.update(run_cca(cfg, img_tr, sent_tr, s2i_tr, img_te, sent_te, s2i_te, log))
    result["seconds"] = time.time() - t0
    return result
