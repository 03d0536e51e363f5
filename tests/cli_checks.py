"""CLI helpers shared by the test files: run a command in-process, and assert the one-line
error every bad input must give (exit code 2, a single 'error: ' line, no traceback)."""

from __future__ import annotations

from click.testing import CliRunner

from es_compact_cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    for w in words:
        assert w in lines[0], lines[0]
