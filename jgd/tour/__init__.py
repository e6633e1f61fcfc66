"""The tour: the seeds' whole lesson, run by jgd, measured and drawn (``jgd tour``).

One module per section (``_s1_bowl`` ... ``_s11_critical_batch``), each holding its computation (a
function returning a ``Section``) and its figure (``draw``) side by side. Every checked number is
a ``Row`` with its reference and tolerance; agreement is decided on numbers, text is made last.
``run()`` executes the sections, prints each one's numbers beside the seeds' own, draws one PNG
per section, ends with the table of every check, and writes the page ``index.html`` (``_page``).
"""

from __future__ import annotations

import contextlib
import pathlib
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from jgd import timing
from jgd.tour import (
    _beside,
    _page,
    _s1_bowl,
    _s2_learning_rate,
    _s3_batch_variants,
    _s4_noise_ball,
    _s5_ravine,
    _s6_logistic,
    _s7_gradient_modes,
    _s8_pytorch,
    _s9_batch_size,
    _s10_edge_of_stability,
    _s11_critical_batch,
)
from jgd.tour._report import Row, Section, Spec, section_text, summary

SECTIONS: dict[int, Spec] = {
    spec.number: spec
    for spec in (
        _s1_bowl.SPEC,
        _s2_learning_rate.SPEC,
        _s3_batch_variants.SPEC,
        _s4_noise_ball.SPEC,
        _s5_ravine.SPEC,
        _s6_logistic.SPEC,
        _s7_gradient_modes.SPEC,
        _s8_pytorch.SPEC,
        _s9_batch_size.SPEC,
        _s10_edge_of_stability.SPEC,
        _s11_critical_batch.SPEC,
    )
}
"""The tour's sections by number: each a ``Spec`` (title, PNG name, computation, figure).

Examples:
  >>> from jgd import tour
  >>> len(tour.SECTIONS), tour.SECTIONS[1].png
  (11, '01_bowl.png')
"""
quadratic_bowl = _s1_bowl.quadratic_bowl
learning_rate = _s2_learning_rate.learning_rate
batch_variants = _s3_batch_variants.batch_variants
noise_ball = _s4_noise_ball.noise_ball
ravine = _s5_ravine.ravine
logistic_and_init = _s6_logistic.logistic_and_init
gradient_modes = _s7_gradient_modes.gradient_modes
pytorch_model = _s8_pytorch.pytorch_model
batch_size = _s9_batch_size.batch_size
edge_of_stability = _s10_edge_of_stability.edge_of_stability
critical_batch = _s11_critical_batch.critical_batch


class TourResult(NamedTuple):
    """What ``run`` returns: the sections it ran, the files it wrote, and its time.

    Attributes:
      sections: each section's ``Section`` (its checked rows, figure data, notes).
      files: the PNGs, then ``index.html`` (empty with ``plots=False``).
      seconds: the whole tour's time.

    Examples:
      >>> from jgd import tour
      >>> result = tour.run([1], plots=False, echo=lambda text: None)
      >>> result.all_agree, [s.title for s in result.sections], result.files
      (True, ['Gradient descent on a convex bowl'], [])
    """

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
    processes: int = 2,
) -> TourResult:
    """Runs the tour's sections, prints them, writes their plots and ``index.html`` into ``out``.

    The page holds the table of every check (quantity, reference, jgd's value, tolerance,
    agreement) and each section's figure with its numbers; it links the PNGs by file name, so
    the folder can be copied anywhere.

    Args:
      sections: section numbers (1-11); all when None.
      out: the folder for the PNGs (created).
      plots: draw the PNGs.
      mnist_dir: MNIST IDX files for sections 8-11 (else the download cache, else
        scikit-learn's 8x8 digits).
      echo: where the text goes.
      processes: 2 (on POSIX systems): sections 10 and 11, the two longest, which show no
        time, are computed in a second process beside the others; every time the others show
        is measured with that process stopped. 1: every section in this process, in turn.

    Returns:
      A ``TourResult``; ``all_agree`` says whether every check agreed.

    Raises:
      ValueError: a section number that does not exist, or ``processes`` not 1 or 2.

    Examples:
      >>> import tempfile
      >>> from jgd import tour
      >>> with tempfile.TemporaryDirectory() as out:
      ...     result = tour.run([1], out=out, echo=lambda text: None)
      ...     [f.name for f in result.files]
      ['01_bowl.png', 'index.html']
    """
    numbers = sorted(SECTIONS) if sections is None else list(sections)
    for n in numbers:
        if n not in SECTIONS:
            raise ValueError(f"section {n!r} does not exist; the tour has {sorted(SECTIONS)}.")
    if processes not in (1, 2) or isinstance(processes, bool):
        raise ValueError(f"processes={processes!r} is not valid; expected 1 or 2.")
    out = pathlib.Path(out)
    if plots:
        out.mkdir(parents=True, exist_ok=True)
        from jgd.tour._plots import draw
    start = time.perf_counter()
    done, files, times = [], [], []
    beside = _start_beside(numbers, processes, mnist_dir, out if plots else None)
    try:
        with timing.pausing(beside) if beside else contextlib.nullcontext():
            for n in numbers:
                spec, t0 = SECTIONS[n], time.perf_counter()
                if beside is not None and n in _beside.NUMBERS:
                    section, seconds, path = beside.result(n)
                else:
                    section = spec.compute(mnist_dir) if spec.uses_mnist else spec.compute()
                    seconds = time.perf_counter() - t0
                    path = draw(spec, section, out) if plots else None
                done.append(section)
                times.append(seconds)
                echo(section_text(section, seconds))
                if path is not None:
                    files.append(path)
    finally:
        if beside is not None:
            beside.close()
    seconds = time.perf_counter() - start
    echo(summary(done))
    if files:
        names = [f.name for f in files]
        files.append(_page.write(out, done, names, times, seconds))
        echo("plots and their page written:\n" + "\n".join(f"  {f}" for f in files))
    echo(f"tour finished in {seconds:.1f}s")
    return TourResult(done, files, seconds)


def _start_beside(numbers, processes, mnist_dir, out) -> _beside.Beside | None:
    """The second process for the sections of ``_beside.NUMBERS`` asked for, when there are
    others to compute beside them (and POSIX signals to pause it with); else None."""
    theirs = [n for n in _beside.NUMBERS if n in numbers]
    if processes == 1 or not theirs or len(theirs) == len(numbers) or not _beside.available():
        return None
    return _beside.Beside([SECTIONS[n] for n in theirs], mnist_dir, out)


__all__ = ["SECTIONS", "Row", "Section", "Spec", "TourResult", "run"]
