"""The ``sigla`` command line: parse arguments, call the library, turn errors into one line.

sigla chat "What is the capital of France?"
echo "Summarise this" | sigla chat -m openai/gpt-4o-mini --no-stream
sigla models
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import __version__
from .errors import ConfigurationError, InvalidRequestError, LLMError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_USAGE = 2  # bad configuration or arguments: retrying will not help
EXIT_INTERRUPTED = 130


def _fails_cleanly(command: F) -> F:
    """Library errors become one line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LLMError as error:
            line = " ".join(str(error).split())
            click.echo(f"sigla: error: {line}", err=True)
            usage = isinstance(error, (ConfigurationError, InvalidRequestError))
            sys.exit(EXIT_USAGE if usage else EXIT_ERROR)
        except click.UsageError as error:
            click.echo(f"sigla: error: {error.format_message()}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("sigla: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sigla")
def main() -> None:
    """Call large language models the SIGLA way (GitHub Models and its successors)."""


def _read_prompt(prompt: str | None) -> str:
    """The prompt argument, or stdin when it is ``-`` or absent (and stdin is not a terminal).

    Input that is not UTF-8 is refused rather than sent garbled (Python would carry the
    bad bytes as lone surrogates, which the service cannot read).
    """
    if prompt is not None and prompt != "-":
        text, where = prompt, "The prompt argument"
        if not text.strip():
            raise click.UsageError(f"{where} is empty.")
    else:
        stdin = sys.stdin
        if prompt is None and stdin.isatty():
            raise click.UsageError('Give a prompt, e.g. sigla chat "Hello", or pipe one on stdin.')
        raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise click.UsageError("The prompt read from stdin is not UTF-8 text.") from None
        where = "The prompt read from stdin"
        if not text.strip():
            raise click.UsageError(f"{where} is empty.")
        text = text.rstrip("\r\n")  # the newline that ends piped text is not part of it
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise click.UsageError(f"{where} is not valid UTF-8 text.") from None
    return text


@main.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", help="Model id, e.g. mistral-ai/Codestral-2501.")
@click.option("-s", "--system", help='System prompt (default: "You are a helpful assistant.").')
@click.option("-t", "--temperature", type=float, help="Sampling temperature, 0 to 2.")
@click.option("--max-tokens", type=int, help="Cap on the answer's length in tokens.")
@click.option("-p", "--provider", help="github, azure, mistral or openai (default: github).")
@click.option("--no-stream", is_flag=True, help="Print the whole answer at once.")
@_fails_cleanly
def chat(
    prompt: str | None,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    provider: str | None,
    no_stream: bool,
) -> None:
    """Ask the model PROMPT (or stdin when PROMPT is - or absent) and print the answer."""
    from .llm import GitHubLLM

    text = _read_prompt(prompt)
    llm = GitHubLLM(model=model, temperature=temperature, provider=provider)
    options: dict[str, Any] = {"system": system, "max_tokens": max_tokens}
    if no_stream:
        click.echo(llm.chat(text, **options))
        return
    out = sys.stdout
    wrote = False
    try:
        for piece in llm.stream(text, **options):
            out.write(piece)
            out.flush()
            wrote = True
    finally:
        if wrote:  # end the line, also when the stream broke part-way
            out.write("\n")
            out.flush()


@main.command()
@click.option("-p", "--provider", help="github, mistral or openai (default: SIGLA_LLM_PROVIDER).")
@_fails_cleanly
def models(provider: str | None) -> None:
    """List the models of the catalog: id, rate-limit tier, input/output token limits."""
    from ._config import resolve_settings
    from .llm import GitHubLLM

    # Listing needs no model, but providers without a default one (openai) would refuse.
    settings = resolve_settings(provider=provider, require_token=False, require_model=False)
    entries = GitHubLLM(provider=provider, model=settings.model or "(listing)").models()
    width = max((len(m.id) for m in entries), default=2)
    click.echo(f"{'ID':<{width}}  {'TIER':<10}  {'MAX IN':>8}  {'MAX OUT':>8}")
    for m in sorted(entries, key=lambda m: m.id.lower()):
        click.echo(
            f"{m.id:<{width}}  {m.rate_limit_tier or '-':<10}  "
            f"{m.max_input_tokens or '-':>8}  {m.max_output_tokens or '-':>8}"
        )


@main.command()
@click.option("-p", "--provider", help="github, azure, mistral or openai.")
@click.option("-m", "--model", help="Model to check.")
@click.option("-e", "--endpoint", help="Base URL to check.")
@click.option("--no-request", is_flag=True, help="Only show the configuration.")
@_fails_cleanly
def doctor(provider: str | None, model: str | None, endpoint: str | None, no_request: bool) -> None:
    """Show the resolved configuration and where each value came from, then try one request."""
    import time

    from ._config import resolve_settings
    from ._sdk import sdk_version
    from .llm import GitHubLLM

    click.echo(f"sigla {__version__}, mistralai {sdk_version() or 'not installed'}")
    try:
        settings = resolve_settings(
            provider=provider, model=model, endpoint=endpoint, require_token=False
        )
    except ConfigurationError as error:
        click.echo(f"configuration  FAILED: {error}")
        sys.exit(EXIT_USAGE)
    spec = settings.spec
    rows = [
        ("provider", f"{spec.name} ({spec.title})", settings.sources.get("provider")),
        ("endpoint", settings.endpoint, settings.sources.get("endpoint")),
        ("model", settings.model, settings.sources.get("model")),
    ]
    if settings.org:
        rows.append(("organization", settings.org, settings.sources.get("org")))
    if settings.api_version:
        rows.append(("api-version", settings.api_version, settings.sources.get("api_version")))
    rows.append(("limits", str(settings.limits), settings.sources.get("limits")))
    found = settings.token is not None
    rows.append(("credential", "found" if found else "not found", settings.sources.get("token")))
    for name, value, source in rows:
        click.echo(f"{name:<13} {value}" + (f"   (from {source})" if source else ""))
    if not found and spec.credential_required:
        click.echo(f"check         FAILED: {spec.credential_hint}")
        sys.exit(EXIT_USAGE)
    if no_request:
        return
    try:
        llm = GitHubLLM(
            provider=settings.provider,
            model=settings.model,
            endpoint=endpoint,  # resolved again the same way; org and /v1 handling included
            token=settings.token,
            max_retries=1,
            max_retry_wait=5,
        )
        started = time.perf_counter()
        result = llm.complete("Reply with OK.", max_tokens=5)
    except LLMError as error:
        click.echo("check         FAILED: " + " ".join(str(error).split()))
        sys.exit(EXIT_USAGE if isinstance(error, ConfigurationError) else EXIT_ERROR)
    elapsed = (time.perf_counter() - started) * 1000
    served = f", served by {result.model}" if result.model else ""
    click.echo(f"check         OK: the model answered in {elapsed:.0f} ms{served}")


if __name__ == "__main__":  # pragma: no cover
    main()
