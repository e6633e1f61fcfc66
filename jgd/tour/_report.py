"""What a tour section returns, how its checks are decided (on numbers), and the summary table.

A ``Row`` holds jgd's number(s) and, when it is a check, the reference number(s) and the rule:
``"near"`` (every ``|value - reference| <= tol``), ``"below"`` (``value < reference``, for
targets such as an error bound) or ``"within"`` (``lo <= value <= hi`` for ``reference = (lo,
hi)``). Agreement is decided on those numbers; text is made last, for
printing, by ``fmt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

Format = str | Callable[[Any], str]


def _text(value: Any, fmt: Format) -> str:
    if callable(fmt):
        return fmt(value)
    if value is None:
        return "-"
    if np.ndim(value) == 0:
        return fmt.format(value)
    return "[" + ", ".join(fmt.format(v) for v in np.ravel(value)) + "]"


class Row(NamedTuple):
    """One quantity: jgd's value, and (for a check) the reference, the rule and the tolerance.

    Examples:
      >>> from jgd.tour import Row
      >>> row = Row("final w", 2.97631, reference=2.9763, tol=5e-5)
      >>> row.agree, row.text, Row("steps", 12, reference=20, rule="below").agree
      (True, '2.9763', True)
    """

    quantity: str
    value: Any
    reference: Any = None  # None: shown, not checked
    tol: float = 0.0
    source: str = "seed"  # the seed's printed number, "NumPy", "closed form", "target", ...
    fmt: Format = "{:.4f}"
    rule: str = "near"  # "near": |value - reference| <= tol; "below": value < reference;
    # "within": reference[0] <= value <= reference[1]

    @property
    def agree(self) -> bool | None:
        """Whether the value passes its check, decided on the numbers; None: not a check."""
        if self.reference is None:
            return None
        v = np.asarray(self.value, np.float64)
        ref = np.asarray(self.reference, np.float64)
        if self.rule == "below":
            return bool(np.all(v < ref))
        if self.rule == "within":
            return bool(np.all((ref[0] <= v) & (v <= ref[1])))
        if v.shape != ref.shape:
            return False
        return bool(np.all(np.abs(v - ref) <= self.tol))

    @property
    def text(self) -> str:
        return _text(self.value, self.fmt)

    @property
    def reference_text(self) -> str:
        if self.reference is None:
            return ""
        ref = _text(self.reference, self.fmt)
        if self.rule == "within":
            lo, hi = (_text(r, self.fmt) for r in self.reference)
            return f"{lo} to {hi}"
        return f"< {ref}" if self.rule == "below" else ref


def decimals(printed: str) -> float:
    """The tolerance a printed number stands for: half a unit in its last digit.

    Examples:
      >>> decimals("2.9763")
      5e-05
    """
    places = len(printed.split(".")[1]) if "." in printed else 0
    return round(0.5 * 10.0**-places, places + 1)


class Section(NamedTuple):
    """What a section computed: its rows, the arrays its figure needs, notes.

    Examples:
      >>> from jgd import tour
      >>> section = tour.SECTIONS[1].compute()
      >>> section.number, [row.agree for row in section.rows], sorted(section.figure)
      (1, [True], ['trajectory'])
    """

    number: int
    title: str
    rows: list[Row]
    figure: dict[str, Any]
    notes: list[str]


class Spec(NamedTuple):
    """A section of the tour: its number, title, file, computation and figure.

    Examples:
      >>> from jgd import tour
      >>> spec = tour.SECTIONS[8]
      >>> spec.title, spec.uses_mnist
      ('The PyTorch model, ported to flax NNX', True)
    """

    number: int
    title: str
    png: str
    compute: Callable[..., Section]
    draw: Callable[[Any, dict[str, Any]], None]  # draw(matplotlib figure, section.figure)
    uses_mnist: bool = False


def section_text(section: Section, seconds: float) -> str:
    lines = [f"\n== {section.number}. {section.title}  ({seconds:.1f}s)"]
    for row in section.rows:
        ref = f"   [{row.source}: {row.reference_text}]" if row.reference is not None else ""
        lines.append(f"  {row.quantity}: {row.text}{ref}")
    lines += ["  " + note.replace("\n", "\n  ") for note in section.notes]
    return "\n".join(lines)


def summary(sections: Sequence[Section]) -> str:
    """The table of every check: quantity, reference, jgd's value, agreement; and the count."""
    rows = [(s.number, r) for s in sections for r in s.rows if r.agree is not None]
    if not rows:
        return ""
    w = min(max(len(r.quantity) for _, r in rows), 78)
    head = f"\n{'#':>2}  {'quantity':<{w}}  {'reference':>28}  {'jgd':>20}  agree"
    lines = [head, "-" * len(head.strip("\n"))]
    for n, r in rows:
        ref = r.reference_text + ("" if r.source == "seed" else f" ({r.source})")
        mark = "yes" if r.agree else "NO"
        lines.append(f"{n:>2}  {r.quantity[:w]:<{w}}  {ref[:28]:>28}  {r.text[:20]:>20}  {mark}")
    agreed = sum(bool(r.agree) for _, r in rows)
    lines.append(f"{agreed}/{len(rows)} comparisons agree")
    return "\n".join(lines)
