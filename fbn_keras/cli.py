"""What every command line of the project shares: a user's mistake ends in one line on stderr and exit status 2.

    parser = cli.ArgumentParser(prog=cli.prog("fbn_keras.train"), description=__doc__)
    ...
    @cli.entry_point("fbn_keras.train")
    def main(argv=None) -> int:
        args = parser.parse_args(argv)           # a bad flag value: one line, exit 2
        with cli.user_errors(ValueError):
            config = config_from_args(args)      # Config.validate's message, one line, exit 2
        cli.check_data_dir(args.data, config.task_set)

Expected mistakes are a bad flag value, a value `Config.validate` rejects, a
missing or unbuilt data folder, a missing or unreadable input file and a model
that does not load (`fbn_keras.runs.RunLoadError`). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, NoReturn, Optional, TypeVar

#: Exit status of a user's mistake (argparse's own).
USAGE_ERROR = 2

#: Built-in exceptions that mean the user named a file or folder that is missing, or that cannot be used.
FILE_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, FileExistsError, NotADirectoryError,
                                                  IsADirectoryError, PermissionError)


class UserError(Exception):
    """A mistake in a command line or its inputs; the message is the one line the user sees."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a command line reports as one line instead of a traceback."""
    from fbn_keras.model import WeightsFileError
    from fbn_keras.runs import RunLoadError

    return (UserError, RunLoadError, WeightsFileError, *FILE_ERRORS)


def one_line(err: BaseException) -> str:
    """`err`'s message on one line (several lines are joined with '; ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def prog(module: str) -> str:
    """The name a command line goes by: the console script (`fbn-train`) when run as one, else `python -m module`."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return script if script.startswith("fbn-") else f"python -m {module}"


def fail(program: str, message: str) -> NoReturn:
    """Print `program: error: message` on one line of stderr and exit with status 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line prints one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (--help lists the options)")


@contextlib.contextmanager
def user_errors(*types: type[BaseException]) -> Iterator[None]:
    """Inside, an exception of `types` is the user's mistake: it becomes a UserError with the same message.

    Wrap only the call that checks the user's input (e.g. `config_from_args` with ValueError), so that
    the same exception type raised by a bug elsewhere keeps its traceback.
    """
    try:
        yield
    except types as err:
        raise UserError(one_line(err)) from err


F = TypeVar("F", bound=Callable[..., Optional[int]])


def entry_point(module: str) -> Callable[[F], F]:
    """Decorate a command line's `main(argv=None)`: an expected error ends in one line and exit status 2."""

    def wrap(main: F) -> F:
        @functools.wraps(main)
        def run(argv: Optional[list[str]] = None) -> Optional[int]:
            try:
                return main(argv)
            except expected_errors() as err:
                fail(prog(module), one_line(err))

        return run  # type: ignore[return-value]

    return wrap


# === Checks shared by several command lines ===

def check_data_dir(data_dir: str | os.PathLike, tasks: Optional[Iterable[str]] = None) -> dict[str, dict]:
    """The databases of a built data folder (`fbn_keras.data.list_databases`), or a UserError saying what is
    wrong: no folder, no manifest, an unreadable manifest, or no training records for one of `tasks`."""
    from fbn_keras import data

    path = Path(data_dir)
    if not path.is_dir():
        raise UserError(f"--data {data_dir}: no such folder")
    with user_errors(ValueError):
        databases = data.list_databases(path)
        if tasks is not None:
            sizes = data.train_sizes(path)
            empty = [t for t in sorted(tasks) if not sizes.get(t)]
            if empty:
                raise UserError(f"--data {data_dir} holds no training records for task(s) {', '.join(empty)} "
                                f"(it holds {', '.join(sorted(databases))}); build a database with those "
                                f"labels or leave the task out with --tasks")
    return databases


def check_files(paths: Iterable[str | os.PathLike], what: str = "input") -> None:
    """A UserError naming the first of `paths` that does not exist."""
    for p in paths:
        if not Path(p).exists():
            raise UserError(f"{what} {p}: no such file or folder")


# === argparse types: a bad value is reported by argparse as "argument --x: ..." ===

def _number(kind: type, test: Callable[[float], bool], allowed: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} {allowed}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} {allowed}"
    return parse


positive_int = _number(int, lambda v: v >= 1, ">= 1")
non_negative_int = _number(int, lambda v: v >= 0, ">= 0")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "> 0")
open_unit_float = _number(float, lambda v: 0 < v < 1, "in (0, 1)")
unit_float = _number(float, lambda v: 0 <= v <= 1, "in [0, 1]")
fraction = _number(float, lambda v: 0 <= v < 1, "in [0, 1)")
