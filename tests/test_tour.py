"""The tour's sections on their numbers, and the CLI's tour command."""

import pathlib
import time

import numpy as np
import pytest

from jgd import cli, tour
from tests.conftest import run_optimized


def values(section):
    return {row.quantity: row for row in section.rows}


def test_section_1_bowl_is_exact():
    section = tour.quadratic_bowl()
    (row,) = section.rows
    assert row.text == "2.9763" and row.agree and abs(row.value - 2.9763) <= 5e-5
    assert section.figure["trajectory"].shape == (16,)


def test_section_2_only_2_1_diverges_and_bound_is_2():
    rows = tour.learning_rate().rows
    assert rows[0].value == [2.1] and rows[0].text == "2.1" and rows[0].agree
    assert abs(rows[1].value - 2) < 1e-4 and rows[1].agree


def test_section_3_matches_the_numpy_loop():
    section = tour.batch_variants()
    assert all(r.agree for r in section.rows if r.agree is not None)
    assert section.rows[0].text == "[1.961, 0.998]"
    runs = section.figure["runs"]
    assert len(runs["SGD B=1"]["path"]) == 301 and len(runs["full batch"]["path"]) == 61


def test_section_4_noise_ball_exact_and_statistical():
    section = tour.noise_ball(seeds=32)
    rows = section.rows
    assert rows[0].text == "0.182" and rows[1].text == "0.009"
    assert rows[0].agree and rows[1].agree and rows[-1].agree  # the decayed ball is smaller
    spread = section.figure["spread"]
    const, decay = spread["constant η=0.1"], spread["η0/(1+γt), γ=0.01"]
    assert len(const) == 32
    assert np.median(decay) < 0.3 * np.median(const)  # the decayed ball is much smaller
    assert np.percentile(decay, 90) < np.percentile(const, 50)


def test_section_5_momentum_beats_plain_gd():
    rows = values(tour.ravine())
    steps = {k.split(", ")[-1]: v.value for k, v in rows.items() if "steps to" in k}
    assert rows["ravine: stability bound 2/λmax for plain GD"].agree
    assert steps["momentum 0.9 (η=0.035)"] < steps["GD (η=0.035)"]
    assert steps["Nesterov 0.9 (η=0.025)"] < steps["GD (η=0.035)"]


def test_section_6_logistic_and_two_minima():
    section = tour.logistic_and_init()
    assert all(r.agree for r in section.rows if r.agree is not None)
    ends = section.figure["ends"]
    assert (ends < 0).any() and (ends > 0).any()


def test_section_7_modes_agree_and_count_their_passes():
    section = tour.gradient_modes(hidden_sizes=(16, 32, 64))  # the tour: 64, 128, 256
    assert all(r.agree for r in section.rows if r.agree is not None)
    report = section.figure["report"]
    P = report.num_params
    assert P == 64 * 32 + 32 + 32 * 10 + 10
    # costs as pass counts (deterministic; the timings are shown, never asserted in tests)
    assert report["forward"].loss_evaluations == P + 1 and report["reverse"].loss_evaluations == 2
    assert report["fd_central"].loss_evaluations == 2 * P
    assert all(r.seconds > 0 for r in report.rows)
    sizes = [row[0] for row in section.figure["scaling"]]
    assert sizes == sorted(sizes) and len(sizes) == 3
    slopes = {r.quantity.split(":")[0]: r for r in section.rows if "by XLA FLOPs" in r.quantity}
    assert slopes["forward mode"].reference == 1 and slopes["reverse mode"].reference == 0
    assert all(r.agree for r in slopes.values())  # FLOP slopes within 0.15 of theory


def test_section_8_matches_pytorch():
    pytest.importorskip("torch")
    section = tour.pytorch_model()
    assert all(r.agree for r in section.rows if r.agree is not None)
    assert len(section.figure["jgd"]) == len(section.figure["torch"])


def test_section_9_batch_sizes():
    table = tour.batch_size(epochs=3).figure["table"]
    assert [b for b, *_ in table] == [8, 32, 128, 512]
    assert all(0.1 < acc <= 1 for _, _, acc, _ in table)


def test_section_10_edge_of_stability_on_digits():
    section = run_optimized("jgd.tour", "edge_of_stability")  # 3,000 steps: running, at -O2
    assert all(r.agree for r in section.rows if r.agree is not None)
    f = section.figure
    assert f["rates"] == (0.1, 0.2)  # digits: 2/η = 20 above the start (about 12), 10 below
    start = section.rows[0].value
    assert 10 < start < 14
    assert f["sharpness 0.1"][0] < 0.7 * 20 and abs(np.median(f["sharpness 0.1"][-50:]) - 20) < 1


def test_section_11_critical_batch_size():
    section = tour.critical_batch(batches=(2, 8, 32, 128))
    steps = section.rows[0].value
    assert steps[0] > 4 * steps[-1]  # small batches need many more steps
    assert steps[2] < 2 * steps[3]  # past the knee, hardly fewer
    noise = section.figure["noise"]
    assert np.isfinite(noise) and noise > 1
    assert all(r.agree for r in section.rows if r.agree is not None)


def test_rows_decide_agreement_on_numbers_and_format_last():
    near = tour.Row("q", 2.97629, 2.9763, 5e-5)
    assert near.agree and near.text == "2.9763" and near.reference_text == "2.9763"
    assert not tour.Row("q", 2.9762, 2.9763, 5e-5).agree  # prints alike at 3 digits, still off
    assert tour.Row("q", [1.0, 2.0], [1.0, 2.1], 0.2).agree
    assert not tour.Row("q", [1.0], [1.0, 2.0], 1.0).agree  # a missing element is a miss
    below = tour.Row("err", 3e-7, 1e-4, rule="below", fmt="{:.1e}")
    assert below.agree and below.reference_text == "< 1.0e-04"
    assert not tour.Row("err", 2e-4, 1e-4, rule="below").agree
    assert tour.Row("shown", 1.5).agree is None
    within = tour.Row("ratio", 1.8, [0.25, 4.0], rule="within", fmt="{:.2f}")
    assert within.agree and within.reference_text == "0.25 to 4.00"
    assert not tour.Row("ratio", 4.5, [0.25, 4.0], rule="within").agree


def test_every_section_has_a_figure_and_a_unique_file():
    assert sorted(tour.SECTIONS) == list(range(1, 12))
    assert len({s.png for s in tour.SECTIONS.values()}) == 11
    assert all(s.number == n for n, s in tour.SECTIONS.items())


def test_run_refuses_an_unknown_section(tmp_path):
    with pytest.raises(ValueError, match="section 12 does not exist"):
        tour.run([12], out=tmp_path, echo=lambda _: None)


def test_run_writes_a_plot_per_section(tmp_path):
    lines = []
    result = tour.run([1, 2], out=tmp_path, echo=lines.append)
    names = ["01_bowl.png", "02_learning_rate.png", "index.html"]
    assert [f.name for f in result.files] == names
    assert all(f.stat().st_size > 10_000 for f in result.files[:2])
    text = "\n".join(lines)
    assert "2.9763" in text and "comparisons agree" in text


def test_cli_tour_one_section(tmp_path, capsys):
    assert cli.main(["tour", "--section", "1", "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "2.9763" in out
    png = tmp_path / "plots" / "01_bowl.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_tour_without_plots(tmp_path, capsys):
    assert cli.main(["tour", "--section", "2", "--no-plots", "--out", str(tmp_path / "none")]) == 0
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    "argv",
    [["tour", "--section", "12"], ["tour", "--section", "x"], ["tour", "--bogus"], ["nope"], []],
)
def test_cli_bad_flags_exit_2_with_one_line(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jgd") and "\n" not in err and "Traceback" not in err


def test_cli_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["tour", "--section", "1", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and "not writable" in err and "\n" not in err


def _rows(result):
    return [[(r.quantity, r.text, r.agree) for r in s.rows] for s in result.sections]


def test_a_section_beside_gives_the_rows_it_gives_in_turn(tmp_path, monkeypatch):
    # section 2 (cheap) stands in for 10 and 11: computed and drawn by the second process
    from jgd.tour import _beside

    monkeypatch.setattr(_beside, "NUMBERS", (2,))
    serial = tour.run([1, 2], out=tmp_path / "a", echo=lambda _: None, processes=1)
    lines = []
    beside = tour.run([1, 2], out=tmp_path / "b", echo=lines.append, processes=2)
    assert _rows(beside) == _rows(serial)
    assert [f.name for f in beside.files] == [f.name for f in serial.files]
    assert (tmp_path / "b" / "02_learning_rate.png").stat().st_size > 10_000
    assert "== 2. " in "\n".join(lines)


def _broken_section():
    raise ArithmeticError("broken on purpose")


def test_a_failing_section_beside_raises_naming_it(tmp_path, monkeypatch):
    from jgd.tour import _beside

    monkeypatch.setattr(_beside, "NUMBERS", (2,))
    spec = tour.SECTIONS[2]._replace(compute=_broken_section)
    monkeypatch.setitem(tour.SECTIONS, 2, spec)
    with pytest.raises(RuntimeError, match="(?s)tour section 2.*broken on purpose"):
        tour.run([1, 2], plots=False, echo=lambda _: None, processes=2)


@pytest.mark.parametrize("processes", [0, 3, True, "2"])
def test_run_refuses_other_process_counts(processes):
    with pytest.raises(ValueError, match=f"processes={processes!r} is not valid"):
        tour.run([1], plots=False, echo=lambda _: None, processes=processes)


def test_the_second_process_is_stopped_while_a_time_is_measured():
    from jgd import timing
    from jgd.tour import _beside

    beside = _beside.Beside([tour.SECTIONS[1]], None, None)  # still importing jax meanwhile
    stat = pathlib.Path(f"/proc/{beside._process.pid}/stat")

    def state(wanted):  # a signal is delivered asynchronously: wait up to 5 s for it
        for _ in range(500):
            now = stat.read_text().split(") ")[1][0]
            if now in wanted:
                break
            time.sleep(0.01)
        return now

    try:
        with timing.pausing(beside):
            with timing.alone(), timing.alone():  # reentrant: stopped once, resumed once
                assert state("T") == "T"
            assert state("RSD") in "RSD"
        section, seconds, path = beside.result(1)
        assert section.number == 1 and seconds > 0 and path is None
    finally:
        beside.close()
    assert beside._process.exitcode is not None
