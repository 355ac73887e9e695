"""The ``sigla`` command line: parse arguments, call the library, turn errors into one line.

sigla chat "What is the capital of France?"
echo "Summarise this" | sigla chat -m openai/gpt-4o-mini --no-stream
sigla models
sigla doctor
sigla map prompts.txt -o answers.jsonl
sigla summarize capsules.jsonl --plan
sigla cache info
sigla prompt run prompts/capsule-tags.prompt.yml --var title=Retries < capsule.txt
sigla prompt check --strict
sigla prompt eval --json prompts/capsule-tags.prompt.yml

Every failure ends as one ``sigla: error: …`` line on stderr and an exit code: 1 when the
call failed, 2 for configuration or usage, 130 when interrupted, 141 (128 + SIGPIPE) when
the reader of stdout went away, as ``sigla chat … | head`` does. Notices of retries and
rate-limit waits go to stderr when it is a terminal, always with ``-v``, never with ``-q``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from . import __version__
from . import _constants as C
from ._cli_batch import add_batch_commands, add_summarize_command
from ._cli_cache import _CACHE_HELP, add_cache_commands
from ._cli_prompts import add_prompt_commands
from ._cli_serve import add_serve_command
from ._config import PROVIDERS, on_github_models, successor_switches
from ._notices import Verbosity, stderr_is_terminal
from ._notices import notices as _notices
from .errors import ConfigurationError, InvalidRequestError, LLMError, MissingTokenError

if TYPE_CHECKING:
    from ._config import Settings
    from .llm import GitHubLLM

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_USAGE = 2  # bad configuration or arguments: retrying will not help
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a writer whose reader went away

_VERBOSITY_KEY = "sigla.verbosity"  # the group's -v/-q, in the context's shared meta


# -- help texts, built from the provider table so that every command says the same


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


_PROVIDER_DEFAULT = "(default: SIGLA_LLM_PROVIDER, else github)"
_PROVIDER_HELP = f"{_or(list(PROVIDERS))} {_PROVIDER_DEFAULT}."
_MODELS_PROVIDER_HELP = (
    f"{_or([p for p in PROVIDERS if p != 'azure'])} {_PROVIDER_DEFAULT}; azure has no model "
    "list: its models are your deployments."
)
_MODEL_HELP = (
    "Model id (default: SIGLA_LLM_MODEL, else "
    + ", ".join(
        f"{spec.default_model} on {name}" if spec.default_model else f"required on {name}"
        for name, spec in PROVIDERS.items()
    )
    + ")."
)
_ENDPOINT_HELP = (
    "Base URL of the model service (default: SIGLA_LLM_ENDPOINT, else "
    + ", ".join(
        f"{spec.default_endpoint or ' or '.join(spec.endpoint_envs) or 'required'} on {name}"
        for name, spec in PROVIDERS.items()
    )
    + ", e.g. http://localhost:11434/v1)."
)
_TIMEOUT_HELP = (
    "Seconds for a whole answer, or for each event of a streamed one "
    f"(default: SIGLA_LLM_TIMEOUT, else {C.DEFAULT_TIMEOUT:g} s)."
)
_MAX_RETRIES_HELP = (
    "Retries after a rate limit, a server error or a lost connection "
    f"(default: {C.DEFAULT_MAX_RETRIES})."
)


def _verbosity_options(function: F) -> F:
    """``-v``/``-q``, accepted by the group (``sigla -v chat``) and by each command."""
    function = click.option(
        "-q", "--quiet", is_flag=True, help="Print no notices, only the answer and errors."
    )(function)
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Print every retry and rate-limit wait on stderr, with sigla's other INFO log "
        "lines (default: retries and waits only when stderr is a terminal).",
    )(function)


def _verbosity(verbose: bool, quiet: bool) -> Verbosity | None:
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet contradict each other.")
    return "verbose" if verbose else "quiet" if quiet else None


# -- errors as the command line's user reads them

# The library's keyword arguments, as this command line spells them.
_OPTIONS = {
    "provider": "-p/--provider",
    "model": "-m/--model",
    "endpoint": "-e/--endpoint",
    "timeout": "--timeout",
    "max_retries": "--max-retries",
    "temperature": "-t/--temperature",
    "max_tokens": "--max-tokens",
    "system": "-s/--system",
    "concurrency": "-c/--concurrency",
    "cache": "--cache",
    "max_input_tokens": "--max-input-tokens",
}
_KEYWORD = re.compile(r"(?:\bargument )?(?<![\w.-])([a-z_]+)=(?![\w'\"<{(/])")


def _in_cli_words(message: str) -> str:
    """``pass endpoint=`` → ``pass -e/--endpoint``: the options a CLI user can type."""
    return _KEYWORD.sub(lambda m: _OPTIONS.get(m.group(1), m.group(0)), message)


def _retirement_sentence() -> str:
    switches = successor_switches()
    return (
        f"GitHub Models itself was retired on {C.GITHUB_MODELS_RETIRED_ON}: switch provider "
        f"with one line ({switches}), then check with `sigla doctor` "
        "(README.md, 'After GitHub Models')."
    )


def _missing_credential(settings: Settings, *, retirement: bool = True) -> str:
    """What to set, from the provider's own variables; never the library's ``token=``."""
    spec = settings.spec
    ways = [f"set {_or(list(spec.credential_envs))}"]
    if spec.use_gh_cli:
        ways.append("run `gh auth login`")
    help_ = f" ({spec.credential_help})" if spec.credential_help else ""
    message = f"No credential for {spec.title}: {_or(ways)}{help_}."
    if retirement and on_github_models(settings.provider, settings.endpoint):
        message += " " + _retirement_sentence()
    return message


def _settings_without_credential(params: Mapping[str, Any]) -> Settings | None:
    """The command's settings, resolved as the library did, but without asking for a token."""
    from ._config import resolve_settings

    try:
        return resolve_settings(
            provider=params.get("provider"),
            endpoint=params.get("endpoint"),
            require_token=False,
            require_model=False,
            gh_token=lambda: None,  # `gh auth token` already said no
        )
    except LLMError:
        return None


def _error_line(error: LLMError, params: Mapping[str, Any]) -> str:
    message = _in_cli_words(str(error))
    if isinstance(error, MissingTokenError):
        settings = _settings_without_credential(params)
        if settings is not None:
            message = _missing_credential(settings)
    return " ".join(message.split())


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr is gone too: the exit code still tells
        click.echo(line, err=True)


def _fail(message: str, code: int) -> NoReturn:
    _say(f"sigla: error: {message}")
    sys.exit(code)


def _interrupted() -> NoReturn:
    if stderr_is_terminal():
        _say("")  # end the line the terminal's ^C echo left open
    _say("sigla: interrupted")
    sys.exit(EXIT_INTERRUPTED)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at interpreter exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass
    finally:
        os.close(devnull)


def _show_warning(message: Warning | str, *args: object, **kwargs: object) -> None:
    """A library warning as one ``sigla: warning:`` line, in the command line's words."""
    _say("sigla: warning: " + " ".join(_in_cli_words(str(message)).split()))


def _command(function: F) -> F:
    """A sigla command: ``-v``/``-q``, notices for its duration, every failure one line."""

    @functools.wraps(function)
    def wrapper(*args: Any, verbose: bool, quiet: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        verbosity = _verbosity(verbose, quiet) or ctx.meta.get(_VERBOSITY_KEY) or "auto"
        try:
            with _notices(verbosity), warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return function(*args, **kwargs)
        except LLMError as error:
            usage = isinstance(error, (ConfigurationError, InvalidRequestError))
            _fail(_error_line(error, ctx.params), EXIT_USAGE if usage else EXIT_ERROR)
        except click.UsageError as error:
            _fail(error.format_message(), EXIT_USAGE)
        except KeyboardInterrupt:
            _interrupted()
        except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
            _silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except OSError as error:  # stdin or stdout failed (a full disk...)
            _silence_stdout()
            _fail(str(error), EXIT_ERROR)

    return _verbosity_options(wrapper)  # type: ignore[return-value]


# click 8.2+ raises it for `sigla` alone; 8.1 prints the help itself (an empty tuple: no match).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _SiglaGroup(click.Group):
    """The ``sigla`` group: click's own usage errors end as one ``sigla: error:`` line too."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line; exit with its code (see the module docstring)."""
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _NO_ARGS_IS_HELP as error:  # `sigla` alone: the help, as click shows it
            error.show()
            sys.exit(error.exit_code)
        except click.ClickException as error:
            message = error.format_message()
            ctx = getattr(error, "ctx", None)
            if isinstance(error, click.UsageError) and ctx is not None:
                message += f" (see `{ctx.command_path} --help`)"
            _fail(message, error.exit_code)
        except click.Abort:
            _say("sigla: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    name="sigla", cls=_SiglaGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="sigla")
@_verbosity_options
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Call large language models the SIGLA way (GitHub Models and its successors).

    -v/-q go before or after the command (sigla -v chat, sigla chat -v); after it, they
    win. Exit codes: 1 the call failed, 2 configuration or usage, 130 interrupted, 141 the
    reader of stdout went away.
    """
    ctx.meta[_VERBOSITY_KEY] = _verbosity(verbose, quiet)


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


def _print_stream(llm: GitHubLLM, text: str, options: dict[str, Any]) -> None:
    """Write the answer as it arrives; the connection closes however the loop ends."""
    out = sys.stdout
    wrote = False
    try:
        with llm.stream(text, **options) as stream:
            for piece in stream:
                wrote = True  # first: an interrupt can land between the write and this line
                out.write(piece)
                out.flush()
    finally:
        if wrote:  # end the line, also when the stream broke part-way
            with contextlib.suppress(OSError):  # stdout itself failed: that error is on its way
                out.write("\n")
                out.flush()


@main.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", help=_MODEL_HELP)
@click.option("-s", "--system", help=f'System prompt (default: "{C.DEFAULT_SYSTEM_PROMPT}").')
@click.option(
    "-t",
    "--temperature",
    type=float,
    help=f"Sampling temperature, 0 to 2 (default: {C.DEFAULT_TEMPERATURE:g}).",
)
@click.option("--max-tokens", type=int, help="Cap on the answer's length in tokens.")
@click.option("-p", "--provider", help=_PROVIDER_HELP)
@click.option("-e", "--endpoint", help=_ENDPOINT_HELP)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help=_TIMEOUT_HELP
)
@click.option("--max-retries", type=click.IntRange(min=0), metavar="N", help=_MAX_RETRIES_HELP)
@click.option("--no-stream", is_flag=True, help="Print the whole answer at once.")
@_command
def chat(
    prompt: str | None,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    provider: str | None,
    endpoint: str | None,
    timeout: float | None,
    max_retries: int | None,
    no_stream: bool,
) -> None:
    """Ask the model PROMPT (or stdin when PROMPT is - or absent) and print the answer."""
    from .llm import GitHubLLM

    text = _read_prompt(prompt)
    llm = GitHubLLM(
        model=model,
        temperature=temperature,
        provider=provider,
        endpoint=endpoint,
        timeout=timeout,
        max_retries=max_retries,
    )
    options: dict[str, Any] = {"system": system, "max_tokens": max_tokens}
    if no_stream:
        click.echo(llm.chat(text, **options))
    else:
        _print_stream(llm, text, options)


@main.command()
@click.option("-p", "--provider", help=_MODELS_PROVIDER_HELP)
@click.option("-e", "--endpoint", help=_ENDPOINT_HELP)
@_command
def models(provider: str | None, endpoint: str | None) -> None:
    """List the models of the catalog: id, rate-limit tier, input/output token limits."""
    from ._config import resolve_settings
    from .llm import GitHubLLM

    # Listing needs no model, but providers without a default one (openai) would refuse.
    settings = resolve_settings(
        provider=provider, endpoint=endpoint, require_token=False, require_model=False
    )
    llm = GitHubLLM(provider=provider, endpoint=endpoint, model=settings.model or "(listing)")
    entries = llm.models()
    width = max((len(m.id) for m in entries), default=2)
    click.echo(f"{'ID':<{width}}  {'TIER':<10}  {'MAX IN':>8}  {'MAX OUT':>8}")
    for m in sorted(entries, key=lambda m: m.id.lower()):
        click.echo(
            f"{m.id:<{width}}  {m.rate_limit_tier or '-':<10}  "
            f"{m.max_input_tokens or '-':>8}  {m.max_output_tokens or '-':>8}"
        )


def _retirement_rows() -> list[str]:
    width = max(len(where) for where, _ in C.SUCCESSOR_SWITCHES)
    return [
        f"retired       GitHub Models (models.github.ai) was retired on "
        f"{C.GITHUB_MODELS_RETIRED_ON}; switch provider with one line:",
        *(f"                {where:<{width}}  {line}" for where, line in C.SUCCESSOR_SWITCHES),
        "              then run `sigla doctor` again (README.md, 'After GitHub Models').",
    ]


@main.command()
@click.option("-p", "--provider", help=_PROVIDER_HELP)
@click.option("-m", "--model", help=_MODEL_HELP)
@click.option("-e", "--endpoint", help=_ENDPOINT_HELP)
@click.option("--cache", "cache", metavar="URL", help=_CACHE_HELP)
@click.option(
    "--limiter",
    metavar="URL",
    help="The shared rate-limit store to check (default: SIGLA_LIMITER_URL).",
)
@click.option("--no-request", is_flag=True, help="Only show the configuration.")
@_command
def doctor(
    provider: str | None,
    model: str | None,
    endpoint: str | None,
    cache: str | None,
    limiter: str | None,
    no_request: bool,
) -> None:
    """Show the resolved configuration and where each value came from, check that the
    response cache and the shared limiter's store answer, then try one request."""
    import time

    from ._cli_cache import doctor_rows, limiter_doctor_rows
    from ._config import resolve_settings
    from ._sdk import sdk_version
    from .llm import GitHubLLM

    click.echo(f"sigla {__version__}, mistralai {sdk_version() or 'not installed'}")
    try:
        settings = resolve_settings(
            provider=provider, model=model, endpoint=endpoint, require_token=False
        )
    except ConfigurationError as error:
        click.echo(f"configuration  FAILED: {_in_cli_words(str(error))}")
        sys.exit(EXIT_USAGE)
    spec = settings.spec
    rows = [
        ("provider", f"{spec.name} ({spec.title})", settings.sources.get("provider")),
        ("endpoint", settings.display_endpoint, settings.sources.get("endpoint")),
        ("model", settings.model, settings.sources.get("model")),
    ]
    if settings.org:
        rows.append(("organization", settings.org, settings.sources.get("org")))
    if settings.api_version:
        rows.append(("api-version", settings.api_version, settings.sources.get("api_version")))
    rows.append(("limits", str(settings.limits), settings.sources.get("limits")))
    found = settings.token is not None
    shown = "not found"
    if settings.token is not None:  # a fingerprint (ghp_…Fvcu) tells keys apart; short: none
        print_ = settings.token.fingerprint
        shown = f"found ({print_})" if print_ else "found"
    rows.append(("credential", shown, settings.sources.get("token")))
    for name, value, source in rows:
        click.echo(f"{name:<13} {value}" + (f"   (from {source})" if source else ""))
    if on_github_models(settings.provider, settings.endpoint):
        for line in _retirement_rows():
            click.echo(line)
    cache_lines, cache_ok = doctor_rows(cache)  # opening it is no request: always checked
    who = settings.token.digest if settings.token is not None else None
    limiter_lines, limiter_ok = limiter_doctor_rows(limiter, settings.endpoint, settings.model, who)
    for line in cache_lines + limiter_lines:
        click.echo(_in_cli_words(line))
    if not found and spec.credential_required:
        click.echo(f"check         FAILED: {_missing_credential(settings, retirement=False)}")
        sys.exit(EXIT_USAGE)
    if not (cache_ok and limiter_ok):
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
            cache=False,  # the check asks the model itself: a cached "OK" would prove nothing
            limiter=limiter,  # and counts in the shared budget, as any request does
        )
        started = time.perf_counter()
        result = llm.complete("Reply with OK.", max_tokens=5)
    except LLMError as error:
        click.echo("check         FAILED: " + " ".join(_in_cli_words(str(error)).split()))
        sys.exit(EXIT_USAGE if isinstance(error, ConfigurationError) else EXIT_ERROR)
    elapsed = (time.perf_counter() - started) * 1000
    served = f", served by {result.model}" if result.model else ""
    click.echo(f"check         OK: the model answered in {elapsed:.0f} ms{served}")


add_cache_commands(main, _command)
_HELPS = {
    "model": _MODEL_HELP,
    "provider": _PROVIDER_HELP,
    "endpoint": _ENDPOINT_HELP,
    "timeout": _TIMEOUT_HELP,
    "max_retries": _MAX_RETRIES_HELP,
    "temperature": f"Sampling temperature, 0 to 2 (default: {C.DEFAULT_TEMPERATURE:g}).",
}
add_batch_commands(main, _command, _HELPS)
add_summarize_command(main, _command, _HELPS)
add_prompt_commands(main, _command, _HELPS)
add_serve_command(main, _command)

if __name__ == "__main__":  # pragma: no cover
    main()
