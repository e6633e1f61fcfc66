"""Drawing a section's figure into a PNG with matplotlib (Agg: no display needed).

The figures themselves are drawn by each section's ``draw`` beside its computation; this module
only makes the figure, titles it, and writes the file whole (a temporary file, then a rename).
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jgd import io
from jgd.tour._report import Section, Spec


def draw(spec: Spec, section: Section, out: pathlib.Path) -> pathlib.Path:
    """Draws ``section``'s figure with ``spec.draw`` into ``out/spec.png``; returns the path."""
    fig = plt.figure(figsize=(11, 4.2), layout="constrained")
    fig.suptitle(f"{section.number}. {section.title}", fontweight="bold")
    try:
        spec.draw(fig, section.figure)
        path = out / spec.png
        with io.atomic(path) as f:
            fig.savefig(f, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
