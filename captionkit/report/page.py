"""The static HTML page every report is written into: one file, inline CSS and JavaScript, no network.

Everything user-controlled (captions, references, ids, file names, settings) goes through ``esc``;
images and plots are ``data:`` URIs (or links to the original files with ``--link-images``), so the
page opens from disk with no server and no CDN. Embedded thumbnails live in one JSON block and are
set on a card's image when it nears the viewport: a 5,000-image page would otherwise make the browser
decode 60 MB of data URIs before its load event. The script sorts and filters the cards in place:
each card carries ``data-cider`` / ``data-len`` / ``data-order`` attributes, the filter matches the
card's text (captions, references, id), lower-cased.
"""
from __future__ import annotations

import html
import json
import math
import shlex
import sys
from pathlib import Path

from ..errors import UserError

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 3em;color:#222;background:#fafafa}
h1{font-size:22px;margin:.8em 0 .3em}h2{font-size:18px;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table.kv{border-collapse:collapse;margin:.3em 0}table.kv td,table.kv th{padding:2px 10px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}table.kv td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.35 ui-monospace,monospace;background:#f0f0f0;padding:1px 4px;white-space:pre-wrap;
word-break:break-all}
.plots img{max-width:100%;margin:4px 8px 4px 0;border:1px solid #e4e4e4;background:#fff}
.controls{position:sticky;top:0;background:#fafafa;padding:8px 0;z-index:2;border-bottom:1px solid #ddd}
.controls input{width:22em;padding:3px}
#cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
.card{width:200px;background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px;
content-visibility:auto;contain-intrinsic-size:200px 400px}
.card[hidden]{display:none}
.card .thumb{max-width:100%;height:auto;background:#eee;display:block;margin:0 auto}
.card .thumb:not([src]){width:100%;aspect-ratio:1}
.card .missing{width:100%;aspect-ratio:1;
background:repeating-linear-gradient(45deg,#eee,#eee 10px,#f6f6f6 10px,#f6f6f6 20px);
display:flex;align-items:center;justify-content:center;color:#a00}
.card .id{font-size:11px;color:#777;word-break:break-all}
.gen{font-weight:600;margin:4px 0}.gen .logp{font-weight:400;color:#777;font-size:12px}
.nbest{margin:0 0 4px;padding-left:1.2em;font-size:12px}
.refs{margin:2px 0;padding-left:1.2em;color:#444;font-size:12px}
.scores{font-size:12px;color:#333;font-variant-numeric:tabular-nums}
.badge{display:inline-block;font-size:11px;padding:0 5px;border-radius:3px;background:#ffe3b3;color:#704000}
.att{display:flex;flex-wrap:wrap;gap:2px;margin-top:4px}
.att figure{margin:0;width:68px;font-size:11px;text-align:center}
.att img{width:68px;height:68px;display:block}
.strip{margin:8px 0;padding:6px;background:#fff;border:1px solid #ddd}
"""

SCRIPT = """
(function(){  // thumbnails: data URIs kept in one JSON block, set when a card comes near the viewport
  var blob=document.getElementById('thumbs'); if(!blob) return;
  var uris=null;
  var io=new IntersectionObserver(function(es){es.forEach(function(e){
    if(!e.isIntersecting) return;
    if(uris===null) uris=JSON.parse(blob.textContent);
    e.target.src=uris[+e.target.getAttribute('data-k')]; io.unobserve(e.target);});},{rootMargin:'800px'});
  document.querySelectorAll('img[data-k]').forEach(function(im){io.observe(im);});
})();
(function(){
  var box=document.getElementById('cards'); if(!box) return;
  var cards=Array.prototype.slice.call(box.children);
  var text=null;  // the cards' text, read on the first filter (not at load: big pages open faster)
  var count=document.getElementById('shown');
  function num(c,k){var v=parseFloat(c.getAttribute(k));return isNaN(v)?null:v;}
  function by(key,dir){return function(a,b){var x=num(a,key),y=num(b,key);
    if(x===null&&y===null)return num(a,'data-order')-num(b,'data-order');
    if(x===null)return 1;if(y===null)return -1;
    return dir*(x-y)||num(a,'data-order')-num(b,'data-order');};}
  var orders={'file':by('data-order',1),'cider-desc':by('data-cider',-1),'cider-asc':by('data-cider',1),
    'len-desc':by('data-len',-1),'len-asc':by('data-len',1)};
  document.getElementById('sort').addEventListener('change',function(e){
    var sorted=cards.slice().sort(orders[e.target.value]);var frag=document.createDocumentFragment();
    sorted.forEach(function(c){frag.appendChild(c);});box.appendChild(frag);});
  document.getElementById('filter').addEventListener('input',function(e){
    var q=e.target.value.toLowerCase().trim(),n=0;
    if(text===null)text=cards.map(function(c){return c.textContent.toLowerCase();});
    cards.forEach(function(c,i){var hit=!q||text[i].indexOf(q)>=0;c.hidden=!hit;if(hit)n++;});
    count.textContent=n;});
})();
"""


def command_line() -> str:
    """This process's command line, as a user would type it."""
    prog = Path(sys.argv[0]).name
    return shlex.join((["captionkit"] if prog in ("captionkit", "__main__.py") else [prog]) + sys.argv[1:])


def esc(value) -> str:
    """Any value -> HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """Numbers to 4 significant decimals, NaN/None as a dash, everything else as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def kv_table(rows, header: tuple[str, str] | None = None) -> str:
    """[(key, value)] -> a two-column table; dict/list values shown as compact JSON."""
    out = ['<table class="kv">']
    if header:
        out.append(f"<tr><th>{esc(header[0])}</th><th>{esc(header[1])}</th></tr>")
    for k, v in rows:
        if isinstance(v, (dict, list)):
            cell = f"<code>{esc(json.dumps(v))}</code>"
        else:
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            out.append(f"<tr><td>{esc(k)}</td><td{cls}>{esc(fmt(v))}</td></tr>")
            continue
        out.append(f"<tr><td>{esc(k)}</td><td>{cell}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def table(header: list[str], rows: list[list]) -> str:
    """A plain table with a header row; numbers right-aligned."""
    out = ['<table class="kv"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = "".join(f'<td class="num">{esc(fmt(v))}</td>' if isinstance(v, (int, float))
                        and not isinstance(v, bool) else f"<td>{esc(fmt(v))}</td>" for v in row)
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def plots_html(uris: dict[str, str]) -> str:
    """{title: data URI} -> a row of embedded plot images."""
    imgs = "".join(f'<img src="{u}" alt="{esc(t)}" title="{esc(t)}">' for t, u in uris.items())
    return f'<div class="plots">{imgs}</div>'


def controls(n: int) -> str:
    """The sort menu and text filter above the cards."""
    return ('<div class="controls"><label>sort <select id="sort">'
            '<option value="file">file order</option><option value="cider-desc">best CIDEr-D</option>'
            '<option value="cider-asc">worst CIDEr-D</option><option value="len-desc">longest caption</option>'
            '<option value="len-asc">shortest caption</option></select></label> '
            '<label>filter <input id="filter" type="search" placeholder="words in captions, references or id">'
            f'</label> <span id="shown">{n}</span> of {n} shown</div>')


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A complete HTML document: the title, then (heading, body HTML) sections, then the script."""
    body = "\n".join(f'<section><h2>{esc(h)}</h2>\n{b}\n</section>' if h else b for h, b in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n"
            f"{body}\n<script>{SCRIPT}</script>\n</body></html>\n")


def write_page(path: str | Path, text: str) -> Path:
    """Write the page (creating its folder); an unwritable path is a UserError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report {path}: {e.strerror}") from None
    return path
