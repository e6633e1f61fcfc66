"""The registry of problems the tour, benchmarks, CLI, examples and tests share; the layering."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import optax
import pytest

import jgd
from jgd import problems

JGD = pathlib.Path(jgd.__file__).parent
APPS = {"jgd.tour", "jgd.bench", "jgd.cli", "jgd.apps"}


def test_the_registry_names_every_problem_and_builds_it():
    for name in problems.PROBLEMS:
        p = problems.get(name)
        assert isinstance(p, problems.Problem) and p.name == name
        assert np.isfinite(float(p.loss(p.params, p.data))) if name != "mlp" else True


@pytest.mark.parametrize(
    "name,expected,tol",
    [
        ("bowl", 2.9763, 5e-5),  # seed 003 prints 2.9763
        ("ravine", [0.0, 0.0], 1e-3),
        ("double_well", -1.3008, 1e-3),  # from -2: the global minimum
    ],
)
def test_each_recipe_lands_where_it_should(name, expected, tol):
    np.testing.assert_allclose(problems.get(name).fit().params, expected, atol=tol)


def test_logistic_reaches_newtons_optimum_and_the_noise_ball_the_seeds_distance():
    logistic = problems.logistic()
    np.testing.assert_allclose(logistic.fit().params, logistic.optimum, atol=2e-3)
    ball = problems.noise_ball()
    assert f"{np.linalg.norm(ball.fit().params - ball.optimum):.3f}" == "0.182"


def test_overrides_replace_recipe_entries_and_a_new_plan_replaces_the_whole_plan():
    ball = problems.noise_ball()  # its recipe replays an explicit order of 4,000 SGD steps
    assert ball.fit().steps == 4000
    assert ball.fit(batch_size=10, epochs=2, key=0).steps == 20  # the order is dropped
    swept = ball.sweep(learning_rate=[0.05, 0.1], epochs=1, batch_size=100, key=0)
    assert len(swept) == 2 and swept.losses.shape == (2, 1)
    momentum = ball.fit(optimizer=optax.sgd(0.05, momentum=0.9))  # its own rate, no clash
    assert momentum.steps == 4000 and np.isfinite(momentum.params).all()


def test_the_mlp_on_each_source():
    digits = problems.mlp("digits")
    assert digits.data.X.shape == (1348, 64) and digits.note == "scikit-learn 8x8 digits"
    assert 0 <= digits.accuracy(digits.params) <= 1
    synthetic = problems.mlp("synthetic", examples=32, hidden=8, dtype=np.float32)
    assert synthetic.data.X.shape == (32, 784) and synthetic.data.X.dtype == np.float32
    result = synthetic.fit(optimizer=optax.adam, learning_rate=1e-3, batch_size=8, epochs=1, key=0)
    assert result.steps == 4


def test_bad_names_and_sources_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="name='circle' is not valid; expected one of 'bowl'"):
        problems.get("circle")
    with pytest.raises(ValueError, match="source='cifar' is not valid"):
        problems.mlp("cifar")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        problems.mlp("mnist", mnist_dir=tmp_path)
    with pytest.raises(ValueError, match="not a classifier"):
        problems.bowl().accuracy(1.0)


def test_epoch_order_is_the_seeds_numpy_loop():
    g, expected = np.random.default_rng(3), []
    for _ in range(2):
        perm = g.permutation(10)
        expected += [perm[s : s + 3] for s in (0, 3, 6)]  # the short batch of 1 left out
    order = jgd.data.epoch_order(10, 3, epochs=2, seed=3)
    np.testing.assert_array_equal(order, np.stack(expected))
    np.testing.assert_array_equal(jgd.data.epoch_order(10, 3, steps=4, seed=3), order[:4])
    for kwargs, match in [
        ({"epochs": 1, "steps": 2}, "give epochs or steps"),
        ({}, "give epochs or steps"),
        ({"epochs": 0}, "epochs=0 is not valid"),
    ]:
        with pytest.raises(ValueError, match=match):
            jgd.data.epoch_order(10, 3, **kwargs)
    with pytest.raises(ValueError, match="batch_size=11 is larger than num_examples=10"):
        jgd.data.epoch_order(10, 11, epochs=1)


def test_shuffled_order_is_writable():
    order = jgd.shuffled_order(10, 3, epochs=1, key=0)
    order[0, 0] = order[0, 0]  # torch.from_numpy warns on read-only arrays
    assert order.flags.writeable


def test_import_jgd_loads_neither_matplotlib_torch_nor_sklearn():
    code = (
        "import sys, jgd, jgd.problems, jgd.tour, jgd.bench; "
        "print(sorted(m for m in ('matplotlib', 'torch', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_library_never_imports_the_applications():
    for path in JGD.rglob("*.py"):
        module = "jgd." + ".".join(path.relative_to(JGD).with_suffix("").parts)
        if any(module == a or module.startswith(a + ".") for a in APPS):
            continue
        reached = {n for n in _imports(path) if any(n == a or n.startswith(a + ".") for a in APPS)}
        assert not reached, f"{module} imports the application(s) {sorted(reached)}"
