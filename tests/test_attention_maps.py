"""What people look at: the per-word attention maps of a caption (``attention_figure.word_maps``), the
figure with one panel per word (``draw_maps``) and ``captionkit caption --attention OUT``."""
from pathlib import Path

import pytest
import torch
from _attention_toys import BOS, EOS, P, attention_recipe, grids, model

from captionkit.decoding import greedy
from captionkit.tasks import load_task


@torch.no_grad()
def test_word_maps_are_the_maps_the_decoder_used():
    from captionkit.attention_figure import word_maps

    m = model()
    with torch.no_grad():
        m.out.bias[EOS] -= 20.0  # captions run to max_len: several words each
    for i in range(3):
        feats, seen = grids(3)[i:i + 1], []

        def recording(tokens, state):
            logp, state = m.step(tokens, state)
            seen.append(state[-1][0])  # (P,) the attention that produced this step's word
            return logp, state
        words = greedy(recording, m.init_state(feats), bos=BOS, eos=EOS, max_len=6)[0][0].tokens
        alpha = word_maps(m, feats, words, BOS)
        assert len(words) == 6 and alpha.shape == (6, P)
        torch.testing.assert_close(alpha, torch.stack(seen))


def test_draw_maps_has_one_panel_per_word_showing_its_map():
    from PIL import Image

    from captionkit.attention_figure import PANEL, draw_maps

    image = Image.new("RGB", (50, 50), (200, 180, 160))
    alpha = torch.zeros(3, 4)
    alpha[0, 0] = alpha[1, 3] = 1.0  # word 1 looks top-left, word 2 bottom-right; word 3 everywhere
    alpha[2] = 0.25
    fig = draw_maps(image, ["a", "dog", "runs"], alpha)
    assert fig.size == (4 * PANEL, PANEL + 22)
    px = lambda panel, x, y: sum(fig.getpixel((panel * PANEL + x, y)))  # noqa: E731
    q, r = PANEL // 8, PANEL - PANEL // 8
    assert px(1, q, q) > px(1, r, r) and px(2, r, r) > px(2, q, q)
    assert px(3, q, q) == px(3, r, r) == px(0, q, q)  # uniform attention: the whole photo, undimmed
    with pytest.raises(ValueError, match="2 words but 3"):
        draw_maps(image, ["a", "dog"], alpha)


def test_caption_cli_writes_one_figure_per_image_with_a_panel_per_word(tmp_path, capsys):
    from PIL import Image

    from captionkit.attention_figure import COLUMNS, PANEL
    from captionkit.cli import main
    from captionkit.train import fit

    fit(load_task(data=attention_recipe(tmp_path)))
    capsys.readouterr()  # the training log
    for i in range(2):
        Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(tmp_path / f"pic{i}.png")
    out = tmp_path / "maps"
    assert main(["caption", "--checkpoint", str(tmp_path / "run" / "best.pt"), str(tmp_path / "pic0.png"),
                 str(tmp_path / "pic1.png"), "--attention", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["pic0.png", "pic1.png"]
    for line in lines:
        file, caption = line.split("\t")
        panels = 1 + len(caption.split())  # the photo + one per word
        fig = Image.open(out / Path(file).name)
        assert fig.size == (min(COLUMNS, panels) * PANEL, -(-panels // COLUMNS) * (PANEL + 22))


def test_caption_cli_attention_needs_an_attention_checkpoint(tmp_path, capsys):
    from PIL import Image

    from conftest import tiny_caption_recipe

    from captionkit.cli import main
    from captionkit.train import fit

    fit(load_task(data=tiny_caption_recipe(tmp_path / "run")))
    Image.new("RGB", (32, 32)).save(tmp_path / "pic.png")
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(tmp_path / "run" / "best.pt"), str(tmp_path / "pic.png"),
                 "--attention", str(tmp_path / "maps")]) == 2
    assert "needs an attention captioner" in capsys.readouterr().err
    assert not (tmp_path / "maps").exists()
