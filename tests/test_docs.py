"""The README and the documentation site: the README's code runs, its commands are CI's, and the
API reference lists every public name, each with an example."""

import doctest
import importlib
import inspect
import pathlib
import re
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PUBLIC = [
    "jgd",
    "jgd.losses",
    "jgd.schedules",
    "jgd.models",
    "jgd.data",
    "jgd.problems",
    "jgd.timing",
    "jgd.io",
    "jgd.torch_baseline",
    "jgd.tour",
]


def _names():
    for module in PUBLIC:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            if not isinstance(getattr(mod, name), types.ModuleType):
                yield module, name


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = README.splitlines()
    assert len(lines) <= 200
    first = README.index("```bash")
    commands = [
        line
        for line in README[first : README.index("```\n", first + 7)].splitlines()[1:]
        if line and not line.startswith("#")
    ]
    assert len(commands) == 2 and commands[0].endswith("jgd tour")
    assert commands[1].endswith("python -m pytest")
    installed = commands[1].split("activate && ", 1)[1]  # CI makes its own fresh venv first
    assert installed in (ROOT / ".ci" / "run").read_text()  # and runs the rest as written
    fit = next(i for i, line in enumerate(lines) if "jgd.fit(" in line)
    assert fit < 60  # the first example is near the top


def test_every_python_block_of_the_readme_runs(capsys):
    pytest.importorskip("torch")
    namespace = {"__name__": "readme"}
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):  # in order, one namespace: the README reads top down
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "False" in printed  # the ten lines' run did not diverge


def test_the_readme_links_to_files_that_exist():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def _documented():
    text = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)$", text, re.M))


@pytest.mark.parametrize(("module", "name"), list(_names()), ids=lambda x: x)
def test_every_public_name_is_in_the_api_reference_with_an_example(module, name):
    assert f"{module}.{name}" in _documented(), f"docs/api has no '::: {module}.{name}'"
    obj = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(obj) if not isinstance(obj, tuple | dict | frozenset) else None
    constant = doc is None or doc == inspect.getdoc(type(obj))
    if constant:  # a constant: its attribute docstring
        source = inspect.getsource(importlib.import_module(_home(module, name)))
        match = re.search(rf'^{name}\b[^\n]*=.*?\n"""(.*?)"""', source, re.S | re.M)
        doc = match.group(1) if match else ""
    assert ">>>" in doc, f"{module}.{name} has no example in its docstring"
    if constant:  # doctest does not collect attribute docstrings: run their examples here
        _run_examples(doc, f"{module}.{name}")
    assert not re.search(r"\bseed \d{3}|\bthe seeds'", doc, re.I), f"{module}.{name}: history"


def _run_examples(doc, name):
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    test = doctest.DocTestParser().get_doctest(inspect.cleandoc(doc), {}, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=flags)
    runner.run(test, out=lambda text: print(text))
    assert runner.failures == 0, f"{name}: its example fails (above)"


def _home(module, name):
    """The module a constant is assigned in (where its attribute docstring is)."""
    for candidate in (module, "jgd._grad", "jgd._tangents", "jgd._torch_net"):
        source = inspect.getsource(importlib.import_module(candidate))
        if re.search(rf"^{name}\b[^\n]*=", source, re.M):
            return candidate
    return module
