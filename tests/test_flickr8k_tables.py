"""eval/flickr8k_tables.py rewrites eval/RESULTS.md without losing the sections below its KEEP line."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from flickr8k_tables import KEEP, write_keeping_tail  # noqa: E402


def test_rewrite_keeps_the_hand_added_sections(tmp_path):
    md = tmp_path / "RESULTS.md"
    write_keeping_tail(md, "# tables v1\n")
    assert md.read_text() == "# tables v1\n"
    md.write_text(md.read_text() + f"\n{KEEP}\n\n## Attention rows\n| a | b |\n")
    write_keeping_tail(md, "# tables v2\n\n| x |\n")
    text = md.read_text()
    assert text.startswith("# tables v2\n\n| x |\n\n" + KEEP)
    assert text.endswith("## Attention rows\n| a | b |\n") and "tables v1" not in text
