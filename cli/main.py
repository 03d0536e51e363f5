"""Entry point of the `es-compact` command: a click group; subcommands live one family a file.

Library errors (es_compact.errors.ESCompactError), filesystem errors naming a path (a full disk
also says how much space is left, and where) and sizes too large for memory become a one-line
``error: ...`` on stderr with exit code 2, never a traceback; Ctrl-C exits 130. A group
without its subcommand (``es-compact bench``) prints its help.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from pathlib import Path

import click

from es_compact.errors import ESCompactError


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ESCompactError as exc:
            raise UsageFailure(str(exc)) from None
        except OSError as exc:
            # A path the filesystem refused (missing parent, not a directory, read-only, disk
            # full): the user's to fix, so one line naming the path. Errors without a path
            # are not the user's input and keep their traceback, but for a full disk.
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UsageFailure(disk_full_message(exc)) from None
            if exc.filename is None:
                raise
            if isinstance(exc, FileExistsError) and not Path(exc.filename).is_dir():
                # mkdir(exist_ok=True) over a regular file: "File exists" hides the point.
                raise UsageFailure(f"Not a directory: {exc.filename}") from None
            raise UsageFailure(f"{exc.strerror or exc}: {exc.filename}") from None
        except MemoryError as exc:  # a size option far too large (numpy says how large)
            raise UsageFailure(f"not enough memory: {exc or 'a size is too large'}") from None
        except OverflowError as exc:
            raise UsageFailure(f"a number is too large: {exc}") from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:
            # `es-compact` or `es-compact bench` alone: asking for help is not an error.
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.ClickException as exc:
            # One line, no usage block: "error: Invalid value for '--algo': ..."
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def format_bytes(n: int) -> str:
    """'0 B', '512 B', '8 KiB', '3.5 MiB', '12 GiB': binary units, one decimal below 10."""
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    digits = f"{value:.0f}" if unit == "B" or value >= 10 else f"{value:.1f}".rstrip("0")
    return f"{digits.rstrip('.')} {unit}"


def free_space(path: str | os.PathLike) -> tuple[int, Path]:
    """(bytes an unprivileged process may still write, mount point) of the filesystem holding
    path, or of its nearest existing ancestor."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    mount = p
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    return st.f_bavail * st.f_frsize, mount


def disk_full_message(exc: OSError) -> str:
    """'no space left on device writing PATH: 12 KiB free on /mnt' (or the quota's wording)."""
    what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on device"
    if exc.filename is None:
        return what
    try:
        free, mount = free_space(exc.filename)
    except OSError:
        return f"{what} writing {exc.filename}"
    return f"{what} writing {exc.filename}: {format_bytes(free)} free on {mount}"


class UsageFailure(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="es-compact")
def cli() -> None:
    """Train compact structured policies (KAMA-NN, DCNN, Toeplitz) with evolution strategies."""


def _register() -> None:
    from es_compact_cli import bench, policy_cmds, train

    cli.add_command(policy_cmds.params)
    cli.add_command(bench.bench)
    cli.add_command(train.train)
    from es_compact_cli import run_cmds  # eval, plot, export
    run_cmds.register(cli)
    from es_compact_cli import kernels  # also attaches `bench features`
    cli.add_command(kernels.kernels)
    from es_compact_cli import givens
    cli.add_command(givens.givens)
    from es_compact_cli import experiments
    cli.add_command(experiments.experiment)


_register()


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    # Library warnings (a worker replaced, ...) reach the user as "warning: ..." lines.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # `kill PID` stops any command as Ctrl-C does: training writes its checkpoint, workers
    # stop. (A background job started from a script ignores SIGINT, so SIGTERM is the way.)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        cli.main(prog_name="es-compact", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)
