"""The tour: the seeds' whole lesson, run by jgd, measured and drawn (``jgd tour``).

``run()`` executes the sections (``SECTIONS``), prints each one's numbers beside the seeds' own,
draws one PNG per section, and ends with a table of everything compared.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from jgd.tour._sections import (
    SECTIONS,
    Row,
    Section,
    batch_size,
    batch_variants,
    gradient_modes,
    learning_rate,
    logistic_and_init,
    noise_ball,
    pytorch_model,
    quadratic_bowl,
    ravine,
)

__all__ = [
    "SECTIONS",
    "Row",
    "Section",
    "TourResult",
    "batch_size",
    "batch_variants",
    "gradient_modes",
    "learning_rate",
    "logistic_and_init",
    "noise_ball",
    "pytorch_model",
    "quadratic_bowl",
    "ravine",
    "run",
]


class TourResult(NamedTuple):
    sections: list[Section]
    files: list[pathlib.Path]
    seconds: float

    @property
    def all_agree(self) -> bool:
        return all(r.agree is not False for s in self.sections for r in s.rows)


def run(
    sections: Iterable[int] | None = None,
    out: str | pathlib.Path = "jgd-tour",
    plots: bool = True,
    mnist_dir: str | None = None,
    echo: Callable[[str], None] = print,
) -> TourResult:
    """Runs the tour's sections, prints them, writes their plots into ``out``.

    Args:
      sections: section numbers (1-9); all when None.
      out: the folder for the PNGs (created).
      plots: draw the PNGs.
      mnist_dir: MNIST IDX files for sections 8 and 9 (else the download cache, else
        scikit-learn's 8x8 digits).
      echo: where the text goes.
    """
    numbers = sorted(SECTIONS) if sections is None else list(sections)
    out = pathlib.Path(out)
    if plots:
        out.mkdir(parents=True, exist_ok=True)
        from jgd.tour._plots import draw
    start = time.perf_counter()
    done, files = [], []
    for n in numbers:
        t0 = time.perf_counter()
        fn = SECTIONS[n]
        section = fn(mnist_dir) if n in (8, 9) else fn()
        done.append(section)
        echo(_section_text(section, time.perf_counter() - t0))
        if plots:
            files.append(draw(section, out))
    seconds = time.perf_counter() - start
    echo(_summary(done))
    if files:
        echo("plots written:\n" + "\n".join(f"  {f}" for f in files))
    echo(f"tour finished in {seconds:.1f}s")
    return TourResult(done, files, seconds)


def _section_text(section: Section, seconds: float) -> str:
    lines = [f"\n== {section.number}. {section.title}  ({seconds:.1f}s)"]
    for row in section.rows:
        ref = f"   [{row.source}: {row.reference}]" if row.reference else ""
        lines.append(f"  {row.quantity}: {row.value}{ref}")
    lines += ["  " + note.replace("\n", "\n  ") for note in section.notes]
    return "\n".join(lines)


def _summary(sections: list[Section]) -> str:
    rows = [(s.number, r) for s in sections for r in s.rows if r.agree is not None]
    if not rows:
        return ""
    w = max(len(r.quantity) for _, r in rows)
    w = min(w, 78)
    head = f"\n{'#':>2}  {'quantity':<{w}}  {'reference':>28}  {'jgd':>20}  agree"
    lines = [head, "-" * len(head.strip("\n"))]
    for n, r in rows:
        ref = f"{r.reference} ({r.source})" if r.source != "seed" else r.reference
        mark = "yes" if r.agree else "NO"
        lines.append(f"{n:>2}  {r.quantity[:w]:<{w}}  {ref[:28]:>28}  {r.value[:20]:>20}  {mark}")
    agreed = sum(r.agree for _, r in rows)
    lines.append(f"{agreed}/{len(rows)} comparisons agree")
    return "\n".join(lines)
