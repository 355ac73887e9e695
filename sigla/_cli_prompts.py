"""``sigla prompt run|check|schema``: prompt files (``.prompt.yml``) on the command line.

``run`` works like ``gh models run FILE --var k=v``: piped stdin (or a TEXT argument)
fills ``{{input}}``, and the answer streams when stdout is a terminal. ``check`` validates
files without calling the service; ``schema`` prints the format's JSON Schema.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click

__all__ = ["add_prompt_commands", "parse_vars"]

Command = Callable[..., Any]
_DEFAULT_GLOBS = ("prompts/*.prompt.yml", "prompts/*.prompt.yaml")


def parse_vars(pairs: tuple[str, ...], files: tuple[str, ...]) -> dict[str, str]:
    """``--var name=value`` and ``--var-file name=path`` as one dict; as in gh-models, a
    pair without ``=``, an empty name or a name given twice is a usage error."""
    out: dict[str, str] = {}
    for flag, items in (("--var", pairs), ("--var-file", files)):
        for item in items:
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or not name:
                raise click.UsageError(
                    f"{flag} {item!r}: expected name=value" + (" with a name" if eq else "")
                )
            if name in out:
                raise click.UsageError(f"{flag} {name}: the variable {name!r} is given twice.")
            if flag == "--var-file":
                try:
                    value = Path(value).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise click.UsageError(
                        f"--var-file {name}: cannot read {value!r}: {exc}"
                    ) from None
            out[name] = value
    return out


def _stdin_text() -> str | None:
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        return None
    raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError("The text read from stdin is not UTF-8.") from None
    return text.rstrip("\r\n") or None


@contextlib.contextmanager
def _quiet_unknown_keys() -> Iterator[None]:
    """``check`` reports unknown keys itself: keep the loader's warnings out of the way."""
    logger = logging.getLogger("sigla")

    def drop(record: logging.LogRecord) -> bool:
        return "unknown key" not in record.getMessage()

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _files(given: tuple[str, ...]) -> list[str]:
    if given:
        return list(given)
    found = sorted({str(p) for pattern in _DEFAULT_GLOBS for p in Path().glob(pattern)})
    if not found:
        raise click.UsageError("No prompt files given, and none found in prompts/.")
    return found


def check_files(files: list[str], strict: bool) -> int:
    """Validate each file and print what is wrong; the exit code (0, or 1 on a problem)."""
    from .errors import PromptFileError
    from .prompts import load_prompt

    errors = warnings = 0
    for path in files:
        try:
            with _quiet_unknown_keys():
                prompt = load_prompt(path)
        except PromptFileError as error:
            click.echo(f"error: {error}")
            errors += 1
            continue
        notes = [key.describe(path) for key in prompt.unknown_keys]
        for i, case in enumerate(prompt.test_data):
            try:
                prompt.render(case)
            except PromptFileError as error:
                notes.append(f"{error} (testData[{i}]; gh-models would send it verbatim)")
        for note in notes:
            click.echo(f"{'error' if strict else 'warning'}: {note}")
        warnings += len(notes)
        if not notes:
            click.echo(
                f"ok: {path} ({len(prompt.test_data)} test cases, "
                f"{len(prompt.evaluators)} evaluators)"
            )
    failed = errors + (warnings if strict else 0)
    click.echo(f"{len(files)} file(s) checked: {errors} invalid, {warnings} warning(s)")
    return 1 if failed else 0


def add_prompt_commands(
    group: click.Group, command: Callable[[Command], Command], helps: Mapping[str, str]
) -> None:
    """Add the ``prompt`` group to ``group``; ``command`` is the CLI's decorator (-v/-q,
    errors as one line)."""

    @group.group(name="prompt")
    def prompt() -> None:
        """Run, check and describe prompt files (.prompt.yml, GitHub's format)."""

    @prompt.command(name="run")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.argument("text", required=False)
    @click.option(
        "--var",
        "pairs",
        multiple=True,
        metavar="NAME=VALUE",
        help="A template variable; repeat for more.",
    )
    @click.option(
        "--var-file",
        "var_files",
        multiple=True,
        metavar="NAME=PATH",
        help="A template variable read from a file.",
    )
    @click.option("-m", "--model", help="Send this model (over the file's and the client's).")
    @click.option("-t", "--temperature", type=float, help="Override modelParameters.temperature.")
    @click.option("--max-tokens", type=int, help="Override modelParameters.maxTokens.")
    @click.option("--top-p", type=float, help="Override modelParameters.topP.")
    @click.option("-p", "--provider", help=helps["provider"])
    @click.option("-e", "--endpoint", help=helps["endpoint"])
    @click.option("--no-stream", is_flag=True, help="Print the whole answer at once.")
    @command
    def run(
        file: str,
        text: str | None,
        pairs: tuple[str, ...],
        var_files: tuple[str, ...],
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        top_p: float | None,
        provider: str | None,
        endpoint: str | None,
        no_stream: bool,
    ) -> None:
        """Run the prompt FILE and print the answer; TEXT or piped stdin fills {{input}}."""
        from .llm import GitHubLLM
        from .prompts import load_prompt

        variables = parse_vars(pairs, var_files)
        given = text if text is not None and text != "-" else _stdin_text()
        if given is not None:
            if "input" in variables:
                raise click.UsageError("{{input}} is given twice: by --var input and by text.")
            variables["input"] = given
        prompt_file = load_prompt(file)
        llm = GitHubLLM(provider=provider, endpoint=endpoint)
        overrides: dict[str, Any] = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "top_p": top_p,
        }
        if no_stream or not sys.stdout.isatty():
            click.echo(prompt_file.run(variables, llm=llm, model=model, **overrides))
            return
        out, wrote = sys.stdout, False
        try:
            with prompt_file.stream(variables, llm=llm, model=model, **overrides) as stream:
                for piece in stream:
                    wrote = True
                    out.write(piece)
                    out.flush()
        finally:
            if wrote:
                with contextlib.suppress(OSError):
                    out.write("\n")
                    out.flush()

    @prompt.command(name="check")
    @click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
    @click.option(
        "--strict",
        is_flag=True,
        help="Fail on unknown keys and on test cases missing a variable too.",
    )
    @command
    def check(files: tuple[str, ...], strict: bool) -> None:
        """Validate prompt FILES (default: prompts/*.prompt.yml) without calling a model.

        Exit 0 when all are valid, 1 when one is not (with --strict, also when one has an
        unknown key, which gh-models would ignore), 2 for a usage error.
        """
        sys.exit(check_files(_files(files), strict))

    @prompt.command(name="schema")
    @command
    def schema() -> None:
        """Print the JSON Schema of prompt files (for editors' *.prompt.yml)."""
        from .prompts import prompt_schema

        click.echo(json.dumps(prompt_schema(), indent=2))
