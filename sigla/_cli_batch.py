"""``sigla map``: many prompts through the batch engine, JSON Lines out in input order.

``cli.py`` wires it with ``add_batch_commands(main, _command, helps)``; ``helps`` holds the
help texts its other commands share, so every command says the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

import click

from ._text import shown
from .errors import BatchError, InvalidRequestError, LLMError, NotAttemptedError

if TYPE_CHECKING:
    from .llm import GitHubLLM

__all__ = ["add_batch_commands", "parse_items", "Item"]

Command = Callable[..., Any]
DEFAULT_CACHE = "\0default"  # `--cache` given without a value: the default file


class Item:
    """One input line: its index, optional id, and its prompt or the reason it has none."""

    __slots__ = ("error", "id", "index", "prompt")

    def __init__(
        self, index: int, id: Any, prompt: Any = None, error: LLMError | None = None
    ) -> None:
        self.index = index
        self.id = id
        self.prompt = prompt
        self.error = error


def _bad(index: int, id_: Any, message: str) -> Item:
    return Item(index, id_, error=InvalidRequestError(message))


def _json_item(index: int, number: int, line: str) -> Item:
    where = f"Line {number}"
    try:
        data = json.loads(line)
    except ValueError as problem:
        return _bad(index, None, f"{where} is not JSON: {problem}.")
    if not isinstance(data, dict):
        return _bad(index, None, f"{where}: expected an object, not {shown(data)}.")
    id_ = data.get("id")
    prompt = data.get("messages", data.get("prompt"))
    if "messages" in data and "prompt" in data:
        return _bad(index, id_, f"{where} has both prompt and messages: give one.")
    if not (isinstance(prompt, str) and prompt.strip()) and not (
        isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt)
    ):
        return _bad(
            index,
            id_,
            f'{where} needs a non-empty "prompt" string or a "messages" list of '
            f'{{"role", "content"}} objects, not {shown(prompt)}.',
        )
    return Item(index, id_, prompt)


def parse_items(lines: list[str]) -> list[Item]:
    """Input lines as items: JSON Lines (objects with ``prompt`` or ``messages``, optional
    ``id``) when the first non-blank line is a JSON object, else one prompt per line.
    Blank lines are skipped; an item's index counts the items, errors name the line."""
    content = [(n, line.rstrip("\r\n")) for n, line in enumerate(lines, 1) if line.strip()]
    if not content:
        raise click.UsageError("The input has no prompts: give one per line, or JSON Lines.")
    first = content[0][1].lstrip()
    as_json = False
    if first.startswith("{"):
        try:
            as_json = isinstance(json.loads(first), dict)
        except ValueError:
            as_json = False
    if as_json:
        return [_json_item(i, n, line) for i, (n, line) in enumerate(content)]
    return [Item(i, None, line) for i, (_, line) in enumerate(content)]


def _read_lines(source: str) -> list[str]:
    if source == "-":
        stream: IO[bytes] = sys.stdin.buffer
        raw = stream.read()
        where = "stdin"
    else:
        try:
            with open(source, "rb") as file:
                raw = file.read()
        except OSError as error:
            raise click.UsageError(f"Cannot read {source}: {error.strerror or error}.") from None
        where = source
    try:
        # Not splitlines(): JSON text may hold U+2028, form feeds... inside a string.
        return [line.removesuffix("\r") for line in raw.decode("utf-8").split("\n")]
    except UnicodeDecodeError:
        raise click.UsageError(f"{where} is not UTF-8 text.") from None


def _record(item: Item, result: str | LLMError) -> dict[str, Any]:
    if isinstance(result, LLMError):
        return {
            "index": item.index,
            "id": item.id,
            "error": {"type": type(result).__name__, "message": result.message},
        }
    return {"index": item.index, "id": item.id, "answer": result}


def run_map(
    llm: GitHubLLM,
    items: list[Item],
    out: IO[str],
    options: Mapping[str, Any],
) -> tuple[int, LLMError | None]:
    """Send the items' prompts, write one JSON line per item in input order as soon as the
    items before it are done; the number of failed items, and what stopped the batch."""
    sendable = [item for item in items if item.error is None]
    done: dict[int, dict[str, Any]] = {
        item.index: _record(item, item.error) for item in items if item.error is not None
    }
    failed = len(done)
    next_out = 0

    def flush() -> None:
        nonlocal next_out
        while next_out in done:
            out.write(json.dumps(done.pop(next_out), ensure_ascii=False) + "\n")
            next_out += 1
        out.flush()

    def pairs() -> Iterator[tuple[int, str | LLMError]]:
        yield from llm.imap([item.prompt for item in sendable], **options)

    reason: LLMError | None = None
    try:
        for position, result in pairs():
            item = sendable[position]
            done[item.index] = _record(item, result)
            failed += isinstance(result, LLMError)
            flush()
    except BatchError as stopped:
        reason = stopped.reason
    for item in sendable:  # items never taken, because the batch stopped first
        if item.index not in done and item.index >= next_out:
            note = NotAttemptedError(
                f"Not sent: the batch stopped on {type(reason).__name__}.", reason=reason
            )
            done[item.index] = _record(item, note)
            failed += 1
    flush()
    return failed, reason


def _batch_options(helps: Mapping[str, str]) -> Callable[[Command], Command]:
    """The options ``map`` and ``summarize`` share: the connection, the concurrency, the
    cache and the progress bar (``helps``: the help texts the CLI's commands share)."""
    options = [
        click.option("-m", "--model", help=helps["model"]),
        click.option("-p", "--provider", help=helps["provider"]),
        click.option("-e", "--endpoint", help=helps["endpoint"]),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help=helps["timeout"],
        ),
        click.option(
            "--max-retries", type=click.IntRange(min=0), metavar="N", help=helps["max_retries"]
        ),
        click.option(
            "-c",
            "--concurrency",
            type=click.IntRange(min=1, max=256),
            metavar="N",
            help="Requests in flight (default: the service's known limit, else learned from "
            "its 429s).",
        ),
        click.option(
            "--cache",
            "cache",
            is_flag=False,
            flag_value=DEFAULT_CACHE,
            metavar="PATH",
            help="Keep answers in this cache file (alone: the default file; default: "
            "SIGLA_CACHE_URL). A run stopped half way resumes without paying twice.",
        ),
        click.option(
            "--limiter",
            metavar="URL",
            help="Share the rate-limit budget with other processes through this store: "
            "sqlite:///limits.db or redis://host:6379/0 (default: SIGLA_LIMITER_URL, else this "
            "process only).",
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="A progress bar on stderr (default: when stderr is a terminal).",
        ),
    ]

    def apply(function: Command) -> Command:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


def _client(cache: str | None, **settings: Any) -> GitHubLLM:
    """The client a batch command runs on: its settings, and ``--cache`` (alone: the
    default file)."""
    from .llm import GitHubLLM

    return GitHubLLM(cache=True if cache == DEFAULT_CACHE else cache, **settings)


def add_batch_commands(
    group: click.Group, command: Callable[[Command], Command], helps: Mapping[str, str]
) -> None:
    """Add ``map`` to ``group``, wrapped by ``command`` (-v/-q, errors as one line)."""

    @group.command(name="map")
    @click.argument("source", metavar="FILE|-")
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        help="Write the JSON Lines here instead of stdout.",
    )
    @click.option("-s", "--system", help="System prompt for every item.")
    @click.option("-t", "--temperature", type=float, help=helps["temperature"])
    @click.option("--max-tokens", type=int, help="Cap on each answer's length in tokens.")
    @_batch_options(helps)
    @command
    def map_command(
        source: str,
        output: str | None,
        model: str | None,
        system: str | None,
        temperature: float | None,
        max_tokens: int | None,
        provider: str | None,
        endpoint: str | None,
        timeout: float | None,
        max_retries: int | None,
        concurrency: int | None,
        cache: str | None,
        limiter: str | None,
        progress: bool | None,
    ) -> None:
        """Answer every prompt of FILE (or stdin when -): one per line, or JSON Lines with
        "prompt" or "messages" and an optional "id". Writes JSON Lines in input order:
        {"index", "id", "answer"} or {"index", "id", "error": {"type", "message"}}.
        Exits 0 only when every item got an answer."""
        items = parse_items(_read_lines(source))
        llm = _client(
            cache,
            limiter=limiter,
            model=model,
            temperature=temperature,
            provider=provider,
            endpoint=endpoint,
            timeout=timeout,
            max_retries=max_retries,
        )
        options = {
            "system": system,
            "max_tokens": max_tokens,
            "concurrency": concurrency,
            "progress": progress,
        }
        if output is None:
            failed, reason = run_map(llm, items, sys.stdout, options)
        else:
            with open(output, "w", encoding="utf-8") as out:
                failed, reason = run_map(llm, items, out, options)
        if reason is not None:
            raise BatchError(
                f"{failed} of {len(items)} items failed; the batch stopped early: "
                f"{reason.message} Run the same command again with --cache to send only the "
                "items that have no answer yet.",
                reason=reason,
            )
        if failed:
            click.echo(
                f"sigla: {failed} of {len(items)} items failed (see their error lines).", err=True
            )
            sys.exit(1)


def read_capsules(source: str) -> list[Any]:
    """Capsules from FILE or stdin: one JSON list, or JSON Lines (one capsule per line)."""
    text = "\n".join(_read_lines(source))
    if not text.strip():
        raise click.UsageError("The input has no capsules.")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, list):
        return whole
    capsules = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            capsules.append(json.loads(line))
        except ValueError as problem:
            raise click.UsageError(
                f"Line {number} is not JSON ({problem}): give a JSON list of capsules, or "
                'one per line, e.g. {"id": "c1", "text": "...", "score": 0.9}.'
            ) from None
    return capsules


def add_summarize_command(
    group: click.Group, command: Callable[[Command], Command], helps: Mapping[str, str]
) -> None:
    """Add ``summarize`` to ``group``, wrapped by ``command``."""

    @group.command(name="summarize")
    @click.argument("source", metavar="FILE|-")
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        help="Write the summary here instead of stdout.",
    )
    @click.option(
        "--plan",
        "plan_only",
        is_flag=True,
        help="Only say what it would take (requests, tokens, time); send nothing.",
    )
    @click.option(
        "--max-input-tokens",
        type=click.IntRange(min=1),
        metavar="N",
        help="Input tokens per request (default: the model's known limit, else 4,000).",
    )
    @_batch_options(helps)
    @command
    def summarize(
        source: str,
        output: str | None,
        plan_only: bool,
        max_input_tokens: int | None,
        model: str | None,
        provider: str | None,
        endpoint: str | None,
        timeout: float | None,
        max_retries: int | None,
        concurrency: int | None,
        cache: str | None,
        limiter: str | None,
        progress: bool | None,
    ) -> None:
        """Summarise the capsules of FILE (or stdin when -): a JSON list or JSON Lines of
        {"id", "title", "text", "score"} objects. Prints one summary citing capsule ids."""
        from .capsules import plan_summary, summarize_capsules

        capsules = read_capsules(source)
        llm = _client(
            cache,
            limiter=limiter,
            model=model,
            provider=provider,
            endpoint=endpoint,
            timeout=timeout,
            max_retries=max_retries,
        )
        if plan_only:
            click.echo(str(plan_summary(capsules, llm=llm, max_input_tokens=max_input_tokens)))
            return
        summary = summarize_capsules(
            capsules,
            llm=llm,
            max_input_tokens=max_input_tokens,
            progress=progress,
            concurrency=concurrency,
        )
        if output is None:
            click.echo(summary)
        else:
            with open(output, "w", encoding="utf-8") as out:
                out.write(summary + "\n")
