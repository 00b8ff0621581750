"""Fixtures of the CLI tests: the `oppiva` command run in-process on a real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from oppiva.cli.main import app
from oppiva.db import Store


@dataclass
class Cli:
    """`oppiva --database URL ...`, run in-process; stdout and stderr are kept apart."""

    url: str
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, ["--database", self.url, *args], input=input)

    def ok(self, *args: str, input: str | None = None) -> Result:
        """Run a command that must succeed."""
        result = self(*args, input=input)
        assert result.exit_code == 0, describe(result)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str) -> Any:
        """Run a command with `--json` and parse what it printed on stdout."""
        return json.loads(self.ok(*args, "--json").stdout)

    def add(self, name: str, *options: str) -> int:
        """Register a customer and return its id."""
        return int(self.json("customers", "add", "--name", name, *options)["id"])


def describe(result: Result) -> str:
    """Everything a failed assertion needs to show about a run."""
    return (
        f"exit code {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}\n"
        f"exception: {result.exception!r}"
    )


def error_line(result: Result, *, quiet_stdout: bool = True) -> str:
    """The one plain error line of a refused command (exit code 2, by default nothing on stdout)."""
    assert result.exit_code == 2, describe(result)
    # Click >= 8.2 keeps stderr apart: `result.stderr` is the error, `result.output` both streams.
    assert "Traceback" not in result.output, describe(result)
    assert result.exception is None or isinstance(result.exception, SystemExit), describe(result)
    if quiet_stdout:
        assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    line = lines[0]
    assert line.startswith("error: "), describe(result)
    assert "\x1b[" not in line, "the error line must be plain text"
    return line


@pytest.fixture
def cli(db: Store) -> Cli:
    """The CLI on the test's store (SQLite or PostgreSQL, migrated and empty)."""
    return Cli(db.url)


@pytest.fixture
def cli_for() -> Callable[[str], Cli]:
    """The CLI on any database URL."""
    return Cli
