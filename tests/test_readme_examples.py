"""The README's Python examples run as written (in a scratch directory) and do what they say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from es_compact.strategies import STRATEGIES

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks between `heading` and the next heading of its level or above."""
    text = README.read_text()
    start = text.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    rest = text[start + len(heading):]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    section = rest[: end.start()] if end else rest
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_ask_tell_example_solves_rosenbrock_and_restores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = python_blocks("### Ask / tell on any function")[0]
    scope: dict = {"__name__": "__main__"}
    exec(compile(first, "README.md", "exec"), scope)
    es, again, f = scope["es"], scope["again"], scope["rosenbrock"]
    assert f(es.mean[None])[0] < 1e-10, (es.iteration, f(es.mean[None])[0])
    assert es.iteration < 2000
    np.testing.assert_array_equal(again.mean, es.mean)
    for strategy in (es, again):  # the restored copy continues bitwise identically
        strategy.tell(-f(strategy.ask()))
    np.testing.assert_array_equal(again.mean, es.mean)


def test_the_custom_strategy_example_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(STRATEGIES, "sign", None)  # so the registration is undone afterwards
    second = python_blocks("### Ask / tell on any function")[1]
    scope: dict = {"__name__": "__main__"}
    exec(compile(second, "README.md", "exec"), scope)
    summary = scope["summary"]
    assert summary["iterations"] == 10
    assert (tmp_path / "runs" / "sign-ascent" / "checkpoints" / "latest.json").exists()

