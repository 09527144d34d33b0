"""Retrieval: CCA on a planted shared subspace, ranking metrics on hand-made cases, likelihood
retrieval on a hand-built captioner, and the word-vector readers on tiny files."""
import struct

import pytest
import torch

from captionkit.data.wordvec import embed_sentences, read_glove, read_word2vec_bin, read_word_vectors, tokenize
from captionkit.errors import UserError
from captionkit.retrieval import (combine_similarities, cosine_similarity, encode_captions, first_correct_rank,
                                  fit_cca_path, likelihood_matrix, normalise_likelihood, rank_summary,
                                  retrieval_metrics, select_cca, sentence_similarity)


def _planted(n=2000, k=3, dx=20, dy=30, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g)  # the shared latent
    ax, ay = torch.randn(k, dx, generator=g), torch.randn(k, dy, generator=g)
    x = z @ ax + noise * torch.randn(n, dx, generator=g) + torch.randn(n, dx, generator=g) @ torch.diag(torch.linspace(0.1, 2, dx))
    y = z @ ay + noise * torch.randn(n, dy, generator=g) + 3.0
    return z, x, y


def test_cca_recovers_planted_subspace():
    z, x, y = _planted()
    (cca,) = fit_cca_path(x, y, regs=[1e-4], dim=5)
    assert (cca.corr[:3] > 0.9).all() and (cca.corr[3:] < 0.3).all()
    # the top-3 projections of x span the latent: a linear regression recovers z almost exactly
    cca.power = 0
    px = cca.project_x(x)[:, :3].double()
    coef = torch.linalg.lstsq(px, z.double()).solution
    resid = (px @ coef - z.double()).pow(2).mean() / z.double().pow(2).mean()
    assert resid < 0.05
    # and paired points are nearest neighbours of each other in the shared space
    sim = cosine_similarity(cca.project_x(x[:200])[:, :3], cca.project_y(y[:200])[:, :3])
    assert (sim.argmax(1) == torch.arange(200)).float().mean() > 0.5


def test_cca_regularisation_shrinks_correlations():
    _, x, y = _planted(n=300)
    weak, strong = fit_cca_path(x, y, regs=[1e-6, 10.0], dim=3)
    assert (strong.corr < weak.corr).all()


def test_first_correct_rank_hand_made():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3],
                           [0.2, 0.8, 0.9, 0.4],
                           [0.5, 0.5, 0.5, 0.5]])
    correct = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    # row 0: correct is best -> 1; row 1: 0.4 beaten by 0.8 and 0.9 -> 3; row 2: ties count against -> 4
    assert first_correct_rank(scores, correct).tolist() == [1, 3, 4]
    s = rank_summary(torch.tensor([1, 3, 4, 12]))
    assert s["R@1"] == 25.0 and s["R@5"] == 75.0 and s["R@10"] == 75.0
    assert s["medr"] == 3.5 and s["meanr"] == 5.0


def test_retrieval_metrics_annotation_uses_best_of_five_and_search_per_sentence():
    # 2 images, 4 sentences: s0, s1 -> image 0; s2, s3 -> image 1
    s2i = torch.tensor([0, 0, 1, 1])
    sim = torch.tensor([[0.1, 0.9, 0.5, 0.2],    # image 0: its best sentence s1 ranks 1
                        [0.8, 0.7, 0.6, 0.1]])   # image 1: best own sentence s2 (0.6) behind s0, s1 -> 3
    m = retrieval_metrics(sim, s2i)
    assert m["annotation"]["R@1"] == 50.0 and m["annotation"]["meanr"] == 2.0
    # search: s0 -> [img1 0.8 > img0 0.1] rank 2; s1 rank 1; s2 (0.5 vs 0.6) rank 1; s3 (0.2 vs 0.1) rank 2
    assert m["search"]["R@1"] == 50.0 and m["search"]["meanr"] == 1.5 and m["search"]["medr"] == 1.5


def test_sentence_similarity_excludes_self():
    sent = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    out = sentence_similarity(sent, torch.tensor([0, 0, 1, 1]))
    assert out["R@1"] == 100.0 and out["meanr"] == 1.0


def test_combine_similarities_averages():
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    torch.testing.assert_close(combine_similarities([a, b]), torch.full((2, 3), 0.5))
    torch.testing.assert_close(combine_similarities([a, b], [3, 1]), torch.full((2, 3), 0.75))


def test_select_cca_picks_from_grid():
    z, x, y = _planted(n=1200)
    s2i = torch.arange(1200)
    reg, power, table = select_cca(x[:1000], y[:1000], s2i[:1000], x[1000:], y[1000:], s2i[:200],
                                   regs=[1e-3, 1.0], powers=[0, 4], dim=10, log=lambda *_: None)
    assert len(table) == 4 and reg in (1e-3, 1.0) and power in (0, 4)


class _Vocab:
    pad, bos, eos = 0, 1, 2
    words = {"a": 3, "b": 4}

    def encode(self, text):
        return [self.words[w] for w in text.split()]


class _ToyCaptioner:
    """p(next token) depends only on the image id carried in the state: image i prefers token 3 + i."""
    vocab = _Vocab()

    def init_state(self, visual):
        return (visual.clone(),)

    def step(self, tokens, state):
        img = state[0][:, 0].long()  # (B,)
        logits = torch.zeros(tokens.size(0), 5)
        logits[torch.arange(tokens.size(0)), 3 + img] = 2.0
        return torch.log_softmax(logits, -1), state


def test_likelihood_matrix_matches_per_pair_and_ranks():
    cap = _ToyCaptioner()
    captions = ["a a", "b b", "a", "b"]
    visual = torch.tensor([[0.0], [1.0]])
    lp = likelihood_matrix(cap, visual, captions, pairs_per_batch=3, log=lambda *_: None)
    seqs, lengths = encode_captions(cap.vocab, captions)
    assert seqs[0].tolist() == [3, 3] and lengths.tolist() == [2, 2, 1, 1]
    # by hand: p(preferred token) = e^2 / (e^2 + 4), p(other word) = p(EOS) = 1 / (e^2 + 4)
    import math
    hit, miss = 2 - math.log(math.exp(2) + 4), -math.log(math.exp(2) + 4)
    expected = torch.tensor([[2 * hit + miss, 3 * miss, hit + miss, 2 * miss],
                             [3 * miss, 2 * hit + miss, 2 * miss, hit + miss]])
    torch.testing.assert_close(lp, expected.float(), atol=1e-5, rtol=0)
    m = retrieval_metrics(lp, torch.tensor([0, 1, 0, 1]))
    assert m["search"]["R@1"] == 100.0
    assert normalise_likelihood(lp, lengths, "length").shape == lp.shape
    prior = normalise_likelihood(lp, lengths, "prior")
    torch.testing.assert_close(prior.exp().sum(0), torch.ones(4))


# ---- word vectors ------------------------------------------------------------------------------

def test_glove_reader_and_unknown_words(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("the 1 0 0\ndog 0 1 0\n's 0 0 1\n", encoding="utf-8")
    wv = read_glove(f)
    assert wv.words == ["the", "dog", "'s"] and wv.vectors.shape == (3, 3)
    assert tokenize("The dog's ball, flying.") == ["the", "dog", "'s", "ball", "flying"]
    seqs, kept, rep = embed_sentences(["The dog's ball.", "Zebra!"], wv)
    assert kept == [["the", "dog", "'s"], []] and seqs[0].shape == (3, 3) and seqs[1].shape == (0, 3)
    assert rep.tokens == 5 and rep.unknown_tokens == 2 and rep.empty_sentences == 1
    assert set(rep.unknown_types) == {"ball", "zebra"} and "2/5 tokens" in rep.summary()


def test_glove_reader_errors(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("the 1 0 0\ndog 0 1\n", encoding="utf-8")
    with pytest.raises(UserError, match="bad.txt:2"):
        read_glove(f)
    with pytest.raises(UserError, match="not found"):
        read_glove(tmp_path / "missing.txt")


def test_word2vec_binary_reader(tmp_path):
    f = tmp_path / "w.bin"
    rows = {"cat": [1.0, 2.0], "sat": [-0.5, 0.25]}
    blob = b"2 2\n" + b"".join(w.encode() + b" " + struct.pack("<2f", *v) + b"\n" for w, v in rows.items())
    f.write_bytes(blob)
    wv = read_word_vectors(f)
    assert wv.words == ["cat", "sat"]
    torch.testing.assert_close(wv.vectors, torch.tensor([[1.0, 2.0], [-0.5, 0.25]]))
    f.write_bytes(blob[:-6])
    with pytest.raises(UserError, match="truncated"):
        read_word2vec_bin(f)


# ---- recipes and the end-to-end pipeline on a tiny fake Flickr8k ----------------------------------

from pathlib import Path  # noqa: E402

from captionkit.config import load_config  # noqa: E402
from captionkit.tasks.retrieve import RetrieveConfig, run_experiment  # noqa: E402

RECIPES = sorted(Path(__file__).resolve().parents[1].glob("recipes/retrieve_flickr8k_*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipes_load(recipe):
    cfg = load_config(RetrieveConfig, recipe)
    # the image-encoder recipes (issue 17) name their image side; the sentence side is cfg.method
    assert cfg.data_root == "../shared/data" and (recipe.stem.endswith(cfg.method) or cfg.image_encoder == "sets")


def _fake_flickr8k(root: Path, n_train=12, n_dev=4):
    from PIL import Image
    d = root / "flickr8k"
    (d / "images").mkdir(parents=True)
    words = ["dog", "cat", "runs", "sits", "red", "blue", "grass", "a", "the", "on"]
    g = torch.Generator().manual_seed(0)
    lines, names = [], []
    for i in range(n_train + n_dev):
        name = f"im{i}.jpg"
        Image.new("RGB", (32, 32), (20 * (i % 10), 100, 200 - 10 * (i % 10))).save(d / "images" / name)
        names.append(name)
        for n in range(5):
            ids = torch.randint(0, len(words), (4,), generator=g).tolist()
            lines.append(f"{name}#{n}\t" + " ".join(words[j] for j in ids) + (" zebra ." if n == 0 else " ."))
    (d / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (d / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:n_train]) + "\n")
    (d / "Flickr_8k.devImages.txt").write_text("\n".join(names[n_train:]) + "\n")
    (root / "glove").mkdir()
    (root / "glove" / "g.txt").write_text(
        "".join(f"{w} " + " ".join(f"{v:.3f}" for v in torch.randn(4, generator=g).tolist()) + "\n" for w in words))


@pytest.mark.parametrize("method", ["rnnfv_reg", "rnnfv_cls", "mean", "gmmfv"])
def test_pipeline_end_to_end_tiny(tmp_path, method):
    _fake_flickr8k(tmp_path)
    cfg = load_config(RetrieveConfig, data={
        "data_root": str(tmp_path), "method": method, "val_images": 4, "encoder": "tiny",
        "word_vectors": "glove/g.txt", "feature_cache": str(tmp_path / "cache"), "threads": 1,
        "lm": {"kind": "classification" if method == "rnnfv_cls" else "regression", "hidden": 4, "epochs": 1},
        "norm": {"sample_coords": 10, "min_count": 1, "pca_dim": 6}, "gmm": {"k": 2, "iters": 3},
        "cca": {"regs": [0.1, 1.0], "powers": [0.0, 1.0]}})
    res = run_experiment(cfg, log=lambda *_: None)
    assert res["images"] == 4 and res["sentences"] == 20
    assert set(res["metrics"]) == {"annotation", "search", "sentence_similarity"}
    assert "zebra(16)" in res["info"]["unknown_words"]  # 16 images x 1 unknown word each
    for d in ("annotation", "search"):
        assert 0 <= res["metrics"][d]["R@1"] <= res["metrics"][d]["R@10"] <= 100


def test_bad_recipe_values_are_user_errors(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('method = "bogus"\n')
    with pytest.raises(UserError, match="method must be one of"):
        load_config(RetrieveConfig, f)
    f.write_text('method = "lrcn"\n[lm]\nkind = "regresion"\n')
    with pytest.raises(UserError, match="lm.kind"):
        load_config(RetrieveConfig, f)
