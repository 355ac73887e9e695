"""``sigla prompt run|eval|check|schema``: prompt files (``.prompt.yml``) on the command line.

``run`` works like ``gh models run FILE --var k=v``: piped stdin (or a TEXT argument)
fills ``{{input}}``, and the answer streams when stdout is a terminal. ``eval`` works like
``gh models eval FILE`` (same report, same ``--json``, exit 1 when a test fails), for any
number of files. ``check`` validates files without calling the service; ``schema`` prints
the format's JSON Schema.
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

from ._cli_batch import DEFAULT_CACHE

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
    @click.option(
        "--strict/--no-strict",
        default=True,
        help="Refuse a {{placeholder}} no variable fills (default), or send it as written, "
        "as gh models run does.",
    )
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
        strict: bool,
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
            click.echo(
                prompt_file.run(variables, llm=llm, model=model, strict=strict, **overrides)
            )
            return
        out, wrote = sys.stdout, False
        try:
            with prompt_file.stream(
                variables, llm=llm, model=model, strict=strict, **overrides
            ) as stream:
                for piece in stream:
                    wrote = True
                    out.write(piece)
                    out.flush()
        finally:
            if wrote:
                with contextlib.suppress(OSError):
                    out.write("\n")
                    out.flush()

    @prompt.command(name="eval")
    @click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
    @click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the report as gh models eval --json does (an array for several files).",
    )
    @click.option(
        "--judge-model",
        metavar="MODEL",
        help="Send the judges' calls (llm and github/... evaluators) to this model "
        "(default: SIGLA_JUDGE_MODEL, else each evaluator's through SIGLA_MODEL_MAP).",
    )
    @click.option("-p", "--provider", help=helps["provider"])
    @click.option("-e", "--endpoint", help=helps["endpoint"])
    @click.option(
        "-c",
        "--concurrency",
        type=click.IntRange(min=1, max=256),
        metavar="N",
        help="Requests in flight (default: the service's known limit, else learned).",
    )
    @click.option(
        "--cache",
        "cache",
        is_flag=False,
        flag_value=DEFAULT_CACHE,
        metavar="PATH",
        help="Keep answers in this cache (alone: the default file; default: "
        "SIGLA_CACHE_URL): a second run sends nothing it already asked.",
    )
    @command
    def eval_(
        files: tuple[str, ...],
        as_json: bool,
        judge_model: str | None,
        provider: str | None,
        endpoint: str | None,
        concurrency: int | None,
        cache: str | None,
    ) -> None:
        """Evaluate prompt FILES (default: prompts/*.prompt.yml) on their testData.

        Each test case is sent to the file's model and its answer checked by every
        evaluator, as gh models eval does. Exit 0 when every test case passes, 1 when one
        fails (or a call fails for all), 2 for a usage or prompt-file error.
        """
        from ._prompt_eval import json_text
        from .llm import GitHubLLM
        from .prompts import load_prompt

        prompts = [load_prompt(path) for path in _files(files)]  # all valid before a call
        llm = GitHubLLM(
            provider=provider,
            endpoint=endpoint,
            cache=True if cache == DEFAULT_CACHE else cache,
        )
        reports = []
        for n, prompt_file in enumerate(prompts):
            report = prompt_file.evaluate(llm, concurrency, judge_model=judge_model)
            reports.append(report)
            if not as_json:
                click.echo(("\n" if n else "") + report.to_text())
        if as_json:
            data = [r.as_dict() for r in reports]
            shown = data[0] if len(data) == 1 else data
            click.echo(json_text(shown))
        sys.exit(0 if all(r.passed for r in reports) else 1)

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
