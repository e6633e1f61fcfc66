"""The tour as one page: ``index.html`` beside the PNGs, the table of checks and every figure.

Written by hand with ``html.escape`` (no template engine is a dependency, and the page is two
tables and a list of figures). The page holds nothing from the network and links each PNG by its
file name, so the folder can be copied or served anywhere.
"""

from __future__ import annotations

import html
import pathlib
from collections.abc import Sequence

from jgd import io
from jgd.tour._report import Row, Section

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1180px; margin: 0 auto;
       padding: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; margin: .6em 0; font-size: .92em; }
th, td { text-align: left; padding: .3em .55em; border-bottom: 1px solid #eee;
         vertical-align: top; }
th { background: #f5f5f5; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.yes { color: #17692a; font-weight: 600; }  .no { color: #b00020; font-weight: 700; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f8f8f8; padding: .6em; overflow-x: auto; font-size: .85em; }
nav a { margin-right: .8em; }
"""


def _cell(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def tolerance(row: Row) -> str:
    """The check's rule in words: ``± tol`` for near, ``below`` and ``within`` for bounds."""
    if row.reference is None:
        return ""
    if row.rule == "near":
        return f"± {row.tol:g}"
    return "value below the reference" if row.rule == "below" else "value inside the range"


def _agree(row: Row) -> str:
    if row.agree is None:
        return _cell("shown")
    return _cell("yes", "yes") if row.agree else _cell("NO", "no")


def _summary(sections: Sequence[Section]) -> str:
    head = "<tr><th>#</th><th>quantity</th><th>reference</th><th>jgd</th>"
    head += "<th>tolerance</th><th>agree</th></tr>"
    lines = ['<table id="summary">', head]
    for s in sections:
        for r in s.rows:
            if r.agree is None:
                continue
            ref = r.reference_text + ("" if r.source == "seed" else f" ({r.source})")
            cells = [
                _cell(str(s.number)),
                _cell(r.quantity),
                _cell(ref, "num"),
                _cell(r.text, "num"),
                _cell(tolerance(r), "num"),
                _agree(r),
            ]
            lines.append(f'<tr class="check">{"".join(cells)}</tr>')
    lines.append("</table>")
    return "\n".join(lines)


def _section(section: Section, png: str | None, seconds: float | None) -> str:
    took = f" <small>({seconds:.1f} s)</small>" if seconds is not None else ""
    title = html.escape(f"{section.number}. {section.title}")
    parts = [f'<section id="s{section.number}"><h2>{title}{took}</h2>']
    if png is not None:
        alt = html.escape(f"figure of section {section.number}")
        parts.append(f'<img src="{html.escape(png)}" alt="{alt}">')
    rows = ["<table><tr><th>quantity</th><th>jgd</th><th>reference</th><th>agree</th></tr>"]
    for r in section.rows:
        ref = f"{r.reference_text} ({r.source})" if r.reference is not None else ""
        rows.append(f"<tr>{_cell(r.quantity)}{_cell(r.text, 'num')}{_cell(ref)}{_agree(r)}</tr>")
    parts.append("\n".join([*rows, "</table>"]))
    if section.notes:
        parts.append("<pre>" + html.escape("\n".join(section.notes)) + "</pre>")
    return "\n".join([*parts, "</section>"])


def page(
    sections: Sequence[Section],
    pngs: Sequence[str | None],
    seconds: Sequence[float | None],
    total: float,
) -> str:
    """The tour's page as HTML text: the summary table, then each section with its figure.

    Args:
      sections: the sections run, in order.
      pngs: each section's PNG file name, relative to the page (None: no figure).
      seconds: each section's time.
      total: the whole tour's time.
    """
    checks = [r for s in sections for r in s.rows if r.agree is not None]
    agreed = sum(bool(r.agree) for r in checks)
    nav = " ".join(f'<a href="#s{s.number}">{s.number}</a>' for s in sections)
    body = [
        "<h1>jgd tour: gradient descent, run and measured</h1>",
        f'<p id="count">{agreed}/{len(checks)} comparisons agree; the tour took {total:.1f} s.</p>',
        f"<nav>sections: {nav}</nav>",
        _summary(sections),
        *(_section(s, p, t) for s, p, t in zip(sections, pngs, seconds, strict=True)),
    ]
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>jgd tour</title><style>{_STYLE}</style></head>"
    )
    return head + "<body>\n" + "\n".join(body) + "\n</body></html>\n"


def write(out: pathlib.Path, sections, pngs, seconds, total: float) -> pathlib.Path:
    """Writes ``out/index.html`` whole (a temporary file, then a rename); returns its path."""
    path = out / "index.html"
    io.write_text(path, page(sections, pngs, seconds, total))
    return path
