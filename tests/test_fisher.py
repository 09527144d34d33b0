"""RNN-FV: closed-form output-layer gradients equal autograd's; normalisation; GMM-FV and mean pooling."""
import pytest
import torch

from captionkit.fisher.rnn import (FisherNormalizer, SentenceLM, SentenceLMConfig, fisher_vectors,
                               fisher_vectors_autograd, pad_sequences, reverse_padded, sample_coordinates,
                               train_lm)
from captionkit.fisher.gmm import fit_gmm, gmm_fisher_vectors, mean_vectors

D, V = 6, 11
LENGTHS = [4, 1, 7, 3, 5]


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randn(n, D, generator=g) for n in LENGTHS]
    targets = [torch.randint(0, V, (n,), generator=g) for n in LENGTHS]
    return seqs, targets


@pytest.mark.parametrize("kind", ["regression", "classification"])
@pytest.mark.parametrize("reverse", [False, True])
def test_closed_form_equals_autograd(kind, reverse):
    torch.manual_seed(0)
    model = SentenceLM(SentenceLMConfig(kind=kind, hidden=5, reverse=reverse), D, V)
    seqs, targets = _data()
    targets = targets if kind == "classification" else None
    closed = fisher_vectors(model, seqs, targets, batch_size=3)  # batched, variable lengths, padding
    ref = fisher_vectors_autograd(model, seqs, targets)
    assert closed.shape == (len(seqs), model.fv_dim)
    torch.testing.assert_close(closed, ref, atol=1e-5, rtol=1e-4)
    coords = sample_coordinates(model, 17, seed=3)
    torch.testing.assert_close(fisher_vectors(model, seqs, targets, coords=coords), ref[:, coords],
                               atol=1e-5, rtol=1e-4)


def test_fv_does_not_depend_on_batch_padding():
    torch.manual_seed(0)
    model = SentenceLM(SentenceLMConfig(hidden=4), D)
    seqs, _ = _data()
    alone = torch.cat([fisher_vectors(model, [s]) for s in seqs])
    torch.testing.assert_close(fisher_vectors(model, seqs, batch_size=5), alone, atol=1e-6, rtol=1e-5)


def test_reverse_padded_keeps_padding():
    x = torch.arange(8.).view(2, 4)
    out = reverse_padded(x, torch.tensor([3, 1]))
    assert out.tolist() == [[2, 1, 0, 3], [4, 5, 6, 7]]


def test_empty_sentence_gets_zero_vector():
    model = SentenceLM(SentenceLMConfig(hidden=4), D)
    fv = fisher_vectors(model, [torch.randn(3, D), torch.zeros(0, D)])
    assert fv[1].abs().sum() == 0 and fv[0].abs().sum() > 0


def test_training_lowers_regression_loss():
    torch.manual_seed(0)
    # a predictable sequence: x_{t+1} = x_t rolled, so the LM can learn it
    base = torch.randn(D)
    seqs = [torch.stack([base.roll(t) for t in range(5)]) for _ in range(32)]
    model = SentenceLM(SentenceLMConfig(hidden=16, epochs=30, lr=1e-2, batch_size=16), D)
    hist = train_lm(model, seqs, log=lambda *_: None)
    assert hist[-1] < 0.5 * hist[0]


def test_normalizer_fim_power_l2_pca():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(50, 8, generator=g) * torch.tensor([100., 1, 1, 1, 1, 1, 1, 0.01])
    norm = FisherNormalizer(fim=True, pca_dim=3, eps=1e-12).fit(train)
    out = norm.transform(train)
    assert out.shape == (50, 3)
    pre = norm._pre_pca(train)
    torch.testing.assert_close(pre.norm(dim=1), torch.ones(50))
    # after the FIM scaling every coordinate has unit second moment on the training data
    torch.testing.assert_close((train * norm.scale).pow(2).mean(0), torch.ones(8), rtol=1e-3, atol=1e-3)
    # power normalisation keeps the sign and takes the square root of the magnitude
    n2 = FisherNormalizer(fim=False, l2=False).fit(train)
    torch.testing.assert_close(n2.transform(torch.tensor([[-4.0, 9.0]])), torch.tensor([[-2.0, 3.0]]))


def test_pad_sequences_targets():
    x, lengths, y = pad_sequences([torch.ones(2, 3), torch.ones(1, 3)], [torch.tensor([1, 2]), torch.tensor([5])])
    assert x.shape == (2, 2, 3) and lengths.tolist() == [2, 1] and y.tolist() == [[1, 2], [5, -1]]


def test_gmm_recovers_two_clusters_and_fv_formula():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 2, generator=g) * 0.5 + torch.tensor([5.0, 0])
    b = torch.randn(300, 2, generator=g) * 0.5 - torch.tensor([5.0, 0])
    gmm = fit_gmm(torch.cat([a, b]), 2, log=lambda *_: None)
    means = gmm.means[gmm.means[:, 0].argsort()]
    torch.testing.assert_close(means, torch.tensor([[-5.0, 0], [5.0, 0]]), atol=0.15, rtol=0)
    torch.testing.assert_close(gmm.sigmas, torch.full((2, 2), 0.5), atol=0.07, rtol=0)
    torch.testing.assert_close(gmm.weights, torch.full((2,), 0.5), atol=0.02, rtol=0)
    # FV of a single point at a component mean: zero mean-gradient, -1/sqrt(2w) sigma-gradient
    k = int(gmm.means[:, 0].argmax())
    fv = gmm_fisher_vectors(gmm, [gmm.means[k: k + 1], torch.zeros(0, 2)])
    g_mu, g_sig = fv[0, :4].view(2, 2), fv[0, 4:].view(2, 2)
    torch.testing.assert_close(g_mu[k], torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(g_sig[k], torch.full((2,), -1 / (2 * gmm.weights[k]).sqrt().item()), atol=1e-4, rtol=0)
    assert fv[1].abs().sum() == 0  # empty sentence


def test_gmm_fv_chunking_and_mean_vectors():
    seqs, _ = _data()
    gmm = fit_gmm(torch.cat(seqs), 3, iters=5, log=lambda *_: None)
    torch.testing.assert_close(gmm_fisher_vectors(gmm, seqs, chunk=2), gmm_fisher_vectors(gmm, seqs))
    mv = mean_vectors(seqs + [torch.zeros(0, D)], D)
    torch.testing.assert_close(mv[0], seqs[0].mean(0))
    assert mv[-1].abs().sum() == 0
