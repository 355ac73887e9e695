"""Mutation testing of one sigla module with mutmut: ``bash tests/mutation.sh _retry``.

Not a test module (pytest collects ``test_*.py`` only) and not run by CI: a run takes minutes.
For one module it copies ``sigla/`` and ``tests/`` into ``.mutation/<module>/`` with a
``pyproject.toml`` whose ``[tool.mutmut]`` is the project's plus ``only_mutate`` (this module)
and ``pytest_add_cli_args_test_selection`` (the tests that exercise it), runs
``mutmut run --max-children 1`` there from scratch, then reports the score.

A survivor whose diff only rewords a message (a string literal of two or more words, its
``%s``/``{}`` placeholders unchanged) is *prose*: tests should not pin wording, so it does
not count. A survivor listed in :data:`EQUIVALENT` changes nothing observable and does not
count either. The score is killed / (total - prose survivors - equivalent survivors).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Tests run against each module's mutants besides its own tests/test_<module>.py: the
# end-to-end files that drive it. mutmut runs, per mutant, only those that reach its function.
EXTRA_TESTS: dict[str, list[str]] = {
    "_retry": ["tests/test_core.py", "tests/test_llm.py", "tests/test_hardening.py"],
    "_limits": ["tests/test_config.py", "tests/test_llm.py", "tests/test_batch.py"],
    "_translate": [
        "tests/test_core.py",
        "tests/test_llm.py",
        "tests/test_providers.py",
        "tests/test_hardening.py",
        "tests/test_secrets.py",
        "tests/test_validation.py",
        "tests/test_speed_paths.py",
    ],
    "_streams": ["tests/test_core.py", "tests/test_llm.py", "tests/test_hardening.py"],
    "_attempts": [
        "tests/test_hardening.py",
        "tests/test_llm.py",
        "tests/test_cli_notices.py",
        "tests/test_batch.py",
    ],
    "_requests": ["tests/test_validation.py", "tests/test_core.py", "tests/test_llm.py"],
    "_core": [
        "tests/test_speed_paths.py",
        "tests/test_llm.py",
        "tests/test_providers.py",
        "tests/test_validation.py",
        "tests/test_hardening.py",
    ],
    "_config": [
        "tests/test_providers.py",
        "tests/test_cli.py",
        "tests/test_validation.py",
        "tests/test_secrets.py",
    ],
    "_network": ["tests/test_hardening.py", "tests/test_llm.py"],
    "_transport": [
        "tests/test_llm.py",
        "tests/test_providers.py",
        "tests/test_hardening.py",
        "tests/test_secrets.py",
        "tests/test_hostile.py",
        "tests/test_speed_paths.py",
        "tests/test_limits.py",  # the gate the transport passes each request through
    ],
    "_sse": ["tests/test_hardening.py"],
    "_batch": ["tests/test_batch.py", "tests/test_cli_batch.py", "tests/test_capsules.py"],
    "_slots": ["tests/test_limits.py", "tests/test_batch.py"],
    "_cache": ["tests/test_cache.py", "tests/test_batch.py"],
    "_cache_sqlite": ["tests/test_cache.py", "tests/test_batch.py"],
}

# Modules whose mutants mutmut must run in workers forked from a clean fork server instead
# of from its main process (mutmut's process_isolation). That process has run the whole
# suite to record which tests reach which function, and a worker forked from it inherits
# what the suite left behind: _transport's process-wide sync clients (one per Wire), its SSL
# context and its idle async client were all built there by the unmutated code, so mutants
# of _Transport.__init__, sync_client, _ssl and idle_async_client were never run and
# "survived" though the tests kill each of them. Slower: each worker imports the SDK again.
CLEAN_WORKERS = {"_transport"}

# Tests left out of every run: they send SIGINT to a real child process that imports the
# mutated copy, and under mutmut's trampolines the child can outlive the test's timeout even
# with no mutant active, which stops the run in its clean pass. Add more with --deselect.
DESELECT = [
    "tests/test_cli.py::test_ctrl_c_in_a_real_process_ends_the_line_and_exits_130",
    "tests/test_batch.py::test_ctrl_c_stops_a_batch_promptly_and_closes_its_connections",
]

# Survivors that behave exactly like the original: mutant name -> (a text its changed lines
# contain, "-old" or "+new" without indentation, so that a renumbered mutant shows up as a
# stale entry instead of being excused, and why it is equivalent).
_SAME_BELOW_10 = "below 10 s, f'{s:.2g}' and f'{s:.1f}' less '.0' agree from 1 s up"
_ALSO_HTTP_ERROR = (
    "every httpx/httpx2 TransportError is also an HTTPError; httpcore has no TransportError"
)
_NEVER_EMPTY = "pick() with the default 'github' never returns '' or None: no fallback is read"
_CHECK_OFF = "subprocess.run's check is False by default, and None is as falsy"
_UNSPLIT_NONE = "urlunsplit leaves out a query or fragment that is falsy: None acts as ''"
_AFTER_THE_BRACE = "the body starts with '{' there, so no key or '}' is ever found at index 0"
_FIRST_WINDOW = "the initial window name is read only when 0 s > max_wait, and max_retry_wait >= 0"
_INF = "float() reads 'inf' in any case"
_SET_BY_LIMITER_FOR = (
    "limiter_for sets explicit on every Limiter it registers, and only limiter_for reads it"
)
_ANY_CASE = "codec names are looked up case-insensitively"
_HTTPX_SETS_REQUEST = "httpx's client sets response.request itself once the transport returns"
_HEADER_CASE = "httpx looks header names up case-insensitively (and HTTP reads them so)"
_SDK_ACCEPTS = "the SDK sends an Accept header with every request: the fallback is never read"
_SDK_SENDS_A_UA = "the SDK always sends a User-Agent: the fallback for a missing one is never read"
_ALWAYS_A_TIMEOUT = "sigla gives every request a timeout (httpx a 5 s default): read is never unset"
_NO_3XX_REACHES_HTTPX = "_Plan refuses every 3xx itself, so httpx never has a redirect to follow"
_WHERE_UNSHOWN = (
    "a body's where only words its ReadTimeout, which the error boundary replaces, unchained"
)
_NO_EXTENSIONS_READ = (
    "neither sigla nor the SDK reads a whole answer's extensions (http_version, reason_phrase)"
)
EQUIVALENT: dict[str, tuple[str, str]] = {
    "sigla._retry.x_describe_wait__mutmut_1": (
        "if seconds <= 10:",
        "at exactly 10 s both branches say '10 s'",
    ),
    "sigla._retry.x_describe_wait__mutmut_4": ("(seconds < 1) or True", _SAME_BELOW_10),
    "sigla._retry.x_describe_wait__mutmut_5": ("if seconds <= 1 else", _SAME_BELOW_10),
    "sigla._retry.x_describe_wait__mutmut_6": ("if seconds < 2 else", _SAME_BELOW_10),
    "sigla._retry.x_retry_after_from_headers__mutmut_28": (
        "break",
        "retry-after is the last header read, so break and continue both end the loop",
    ),
    "sigla._limits.x_github_tier__mutmut_6": (
        'model.rsplit("/", )[-1]',
        "the last piece of an unlimited rsplit is the same",
    ),
    "sigla._limits.x_github_tier__mutmut_9": (
        'model.rsplit("/", 2)[-1]',
        "the last piece of rsplit with 2 splits is the same",
    ),
    "sigla._limits.x_limiter_for__mutmut_3": (
        "model.upper()",
        "the key still folds the model's case, only the other way",
    ),
    "sigla._limits.xǁLimiterǁ_no_slot__mutmut_8": (
        "-retry_after=None,",
        "drops retry_after=None, which is RateLimitError's default",
    ),
    "sigla._limits.xǁLimiterǁbook__mutmut_5": ('"XXminuteXX"', _FIRST_WINDOW),
    "sigla._limits.xǁLimiterǁbook__mutmut_6": ('"MINUTE"', _FIRST_WINDOW),
    "sigla._limits.xǁLimiterǁ__init____mutmut_30": ('float("-INF")', _INF),
    "sigla._limits.xǁLimiterǁ_tokens_fit__mutmut_10": ('float("INF")', _INF),
    "sigla._limits.xǁLimiterǁ__init____mutmut_31": (
        '+self._pause_type: str | None = ""',
        "the pause's type is read only while a pause is on, and pause() sets it",
    ),
    "sigla._limits.xǁLimiterǁ__init____mutmut_32": ("+self.explicit = None", _SET_BY_LIMITER_FOR),
    "sigla._limits.xǁLimiterǁ__init____mutmut_33": ("+self.explicit = False", _SET_BY_LIMITER_FOR),
    "sigla._limits.x_estimate_tokens__mutmut_15": (
        "(isinstance(content, str)) and False",
        "for a str content, len(str(content or '')) is len(content)",
    ),
    "sigla._limits.xǁLimiterǁcancel__mutmut_12": (
        "self._settle(slot, tokens, None)",
        "None is as falsy as 0 for _settle's used: the token entry is removed either way",
    ),
    "sigla._limits.xǁLimiterǁpaused_for__mutmut_3": (
        "if left < 0:",
        "with exactly 0 s left both return 0 (0 > max_wait never holds: max_retry_wait >= 0)",
    ),
    "sigla._limits.xǁLimiterǁsent__mutmut_3": (
        "if now < slot:",
        "sent at its booked time, each booking moves from slot to the same time: no change",
    ),
    "sigla._config.x__with_org__mutmut_4": (
        "parts.path.rstrip(None)",
        "the path comes from normalise_endpoint: no trailing '/' left, and no whitespace in a URL",
    ),
    "sigla._config.x_gh_cli_token__mutmut_11": ("check=None", _CHECK_OFF),
    "sigla._config.x_gh_cli_token__mutmut_16": (
        '+[gh, "auth", "token"], capture_output=True, text=True, timeout=timeout, )',
        _CHECK_OFF,
    ),
    "sigla._config.x_gh_cli_token__mutmut_23": (
        "check=True",
        "a failing gh then raises CalledProcessError, a SubprocessError caught as 'no token'",
    ),
    "sigla._config.x_normalise_endpoint__mutmut_39": ("query=None", _UNSPLIT_NONE),
    "sigla._config.x_normalise_endpoint__mutmut_40": ("fragment=None", _UNSPLIT_NONE),
    "sigla._config.x_resolve_settings__mutmut_232": (
        '+value = ""',
        "an unparsable number is refused by isinstance(value, float), '' as much as None",
    ),
    "sigla._config.x_resolve_settings__mutmut_45": (
        '"SIGLA_LLM_PROVIDER",), "GITHUB")',
        "the provider name is lower-cased right after, so the default may be in any case",
    ),
    "sigla._config.x_resolve_settings__mutmut_46": ('or "XXgithubXX"', _NEVER_EMPTY),
    "sigla._config.x_resolve_settings__mutmut_47": ('or "GITHUB"', _NEVER_EMPTY),
    "sigla._transport.x_async_client__mutmut_6": ("follow_redirects=None)", _NO_3XX_REACHES_HTTPX),
    "sigla._transport.x_async_client__mutmut_8": ("_ssl()), )", _NO_3XX_REACHES_HTTPX),
    "sigla._transport.x_async_client__mutmut_13": ("follow_redirects=True)", _NO_3XX_REACHES_HTTPX),
    "sigla._transport.x_sync_client__mutmut_6": ("follow_redirects=None)", _NO_3XX_REACHES_HTTPX),
    "sigla._transport.x_sync_client__mutmut_8": ("_ssl()), )", _NO_3XX_REACHES_HTTPX),
    "sigla._transport.x_sync_client__mutmut_13": ("follow_redirects=True)", _NO_3XX_REACHES_HTTPX),
    "sigla._transport.xǁ_Planǁanswer__mutmut_21": (
        "if status == 200 or _is_chat(request):",
        "an error answer has no choices: nothing to fill in, and the claim refuses it",
    ),
    "sigla._transport.xǁ_Planǁanswer__mutmut_39": ('(b"CONTENT-TYPE", CLAIMED_TYPE', _HEADER_CASE),
    "sigla._transport.xǁ_Planǁanswer__mutmut_43": ("request=None,", _HTTPX_SETS_REQUEST),
    "sigla._transport.xǁ_Planǁanswer__mutmut_48": (
        "content=content, extensions=",
        _HTTPX_SETS_REQUEST,
    ),
    "sigla._transport.xǁ_Planǁanswer__mutmut_44": ("extensions=None", _NO_EXTENSIONS_READ),
    "sigla._transport.xǁ_Planǁanswer__mutmut_49": ("request=request, )", _NO_EXTENSIONS_READ),
    "sigla._transport.x_prepare__mutmut_4": ('+headers["USER-AGENT"]', _HEADER_CASE),
    "sigla._transport.x_prepare__mutmut_10": ("headers.get('USER-AGENT', '')", _HEADER_CASE),
    "sigla._transport.x_prepare__mutmut_30": ('+headers["AUTHORIZATION"]', _HEADER_CASE),
    "sigla._transport.x_prepare__mutmut_42": ('headers.pop("CONTENT-LENGTH", None)', _HEADER_CASE),
    "sigla._transport.x_prepare__mutmut_6": ("headers.get('user-agent', None)", _SDK_SENDS_A_UA),
    "sigla._transport.x_prepare__mutmut_8": ("headers.get('user-agent', )", _SDK_SENDS_A_UA),
    "sigla._transport.x_prepare__mutmut_11": ("headers.get('user-agent', 'XXXX')", _SDK_SENDS_A_UA),
    "sigla._transport.x_prepare__mutmut_40": (
        'headers.pop("content-length", )',
        "a chat POST always has a Content-Length (httpx sets one for a body): pop never misses",
    ),
    "sigla._transport.xǁ_Planǁ__init____mutmut_46": ('headers.get("accept", None)', _SDK_ACCEPTS),
    "sigla._transport.xǁ_Planǁ__init____mutmut_48": ('headers.get("accept", )', _SDK_ACCEPTS),
    "sigla._transport.xǁ_Planǁ__init____mutmut_50": ('headers.get("ACCEPT", "")', _HEADER_CASE),
    "sigla._transport.xǁ_Planǁ__init____mutmut_51": ('headers.get("accept", "XXXX")', _SDK_ACCEPTS),
    "sigla._transport.x__is_chat__mutmut_1": (
        'request.method == "POST" or',
        "sigla POSTs only chat completions and GETs only model lists: `or` picks the same ones",
    ),
    "sigla._transport.x__attempt_timeout__mutmut_11": ("(read) or True", _ALWAYS_A_TIMEOUT),
    "sigla._transport.x__attempt_timeout__mutmut_13": ("else 601.0", _ALWAYS_A_TIMEOUT),
    "sigla._transport.xǁ_Transportǁhandle_request__mutmut_39": (
        "plan.inflater, deadline, None)",
        _WHERE_UNSHOWN,
    ),
    "sigla._transport.xǁ_AsyncTransportǁhandle_async_request__mutmut_39": (
        "plan.inflater, deadline, None)",
        _WHERE_UNSHOWN,
    ),
    "sigla._transport.xǁ_Transportǁhandle_request__mutmut_56": (
        "response.status, None)",
        _NO_EXTENSIONS_READ,
    ),
    "sigla._transport.xǁ_AsyncTransportǁhandle_async_request__mutmut_56": (
        "response.status, None)",
        _NO_EXTENSIONS_READ,
    ),
    "sigla._transport.xǁ_Planǁanswer__mutmut_11": ('decode("UTF-8", "replace")', _ANY_CASE),
    "sigla._transport.x__header__mutmut_5": ('decode("LATIN-1")', _ANY_CASE),
    "sigla._transport.xǁ_Planǁ__init____mutmut_72": (
        "+self.refuse = None",
        "refuse is only tested for truth (and added to only when true): None acts as ''",
    ),
    "sigla._core.x__rewrite_in_place__mutmut_26": ("if at <= 0:", _AFTER_THE_BRACE),
    "sigla._core.x__rewrite_in_place__mutmut_27": ("if at < 1:", _AFTER_THE_BRACE),
    "sigla._core.x__rewrite_in_place__mutmut_39": (
        'body.rfind(b"}", at, len(body) - 1) >= 0',
        "find and rfind are both >= 0 exactly when a '}' is in that range",
    ),
    "sigla._core.x__rewrite_in_place__mutmut_43": ("len(body) - 1) > 0:", _AFTER_THE_BRACE),
    "sigla._core.x__rewrite_in_place__mutmut_44": ("len(body) - 1) >= 1:", _AFTER_THE_BRACE),
    "sigla._core.x__rewrite_in_place__mutmut_49": (
        "at + len(_STREAM_KEY) + 6]",
        "the value is only tested with startswith(b'false') and (b'true'): a 6th byte is unread",
    ),
    "sigla._streams.xǁOutcomeǁ__init____mutmut_2": (
        "+self.closed_by_owner = None",
        "closed_by_owner is only tested for truth, and None is as falsy as False",
    ),
    "sigla._translate.xǁ_Saidǁ__init____mutmut_1": (
        '+self.code: str | None = ""',
        "a missing code is read only through truth tests and `code or kind`: '' acts as None",
    ),
    "sigla._translate.xǁ_Saidǁ__init____mutmut_3": (
        '+self.limit: int | None = ""',
        "the limit is read only as `found.limit or ...`: '' acts as None",
    ),
    "sigla._translate.xǁ_Saidǁ__init____mutmut_4": (
        '+data: Any = ""',
        "data is read only through isinstance(data, Mapping): '' acts as None",
    ),
    "sigla._translate.xǁ_Saidǁ__init____mutmut_9": (
        '"XX[XX"',
        "a JSON array is no Mapping, so parsing it or not leads to the same branch",
    ),
    "sigla._translate.xǁ_Saidǁ__init____mutmut_12": (
        '+data = ""',
        "data is read only through isinstance(data, Mapping): '' acts as None",
    ),
    "sigla._translate.x__is_html__mutmut_11": (
        '"content-type", "XXXX"',
        "'html' is in neither default, '' nor 'xxxx'",
    ),
    "sigla._translate.x__is_html__mutmut_16": (
        "body.lstrip()[:16]",
        "both prefixes tested are at most 14 characters long",
    ),
    "sigla._translate.x__html_text__mutmut_4": (
        "+self._skip = tag in",
        "no start tag is parsed inside <script>/<style> (CDATA), so _skip is 0 at each one",
    ),
    "sigla._translate.x_error_from_status__mutmut_68": (
        "'XX, XX'.join",
        "every provider has exactly one credential variable: there is nothing to join",
    ),
    "sigla._translate.x_error_from_status__mutmut_69": (
        "'XXtoken=XX'",
        "every provider has a credential variable, so 'token=' is never the fallback shown",
    ),
    "sigla._translate.x_error_from_status__mutmut_70": (
        "'TOKEN='",
        "every provider has a credential variable, so 'token=' is never the fallback shown",
    ),
    "sigla._translate.x_translate__mutmut_32": (
        'getattr(exc, "status_code", None) or 0',
        "a missing status read as None or as 0 becomes 0 either way",
    ),
    "sigla._translate.x_translate__mutmut_38": (
        'getattr(exc, "status_code", 1) or 0',
        "a missing status read as 1 or as 0 is below 400 either way: the same branch",
    ),
    "sigla._translate.x_translate__mutmut_39": (
        'getattr(exc, "status_code", 0) or 1',
        "a missing or zero status read as 1 or as 0 is below 400 either way: the same branch",
    ),
    "sigla._translate.x_translate__mutmut_44": (
        'getattr(exc, "body", None) or ""',
        "a missing body read as None or as '' becomes '' either way",
    ),
    "sigla._translate.x_translate__mutmut_119": ('{"XXTransportErrorXX"', _ALSO_HTTP_ERROR),
    "sigla._translate.x_translate__mutmut_120": ('{"transporterror"', _ALSO_HTTP_ERROR),
    "sigla._translate.x_translate__mutmut_121": ('{"TRANSPORTERROR"', _ALSO_HTTP_ERROR),
    "sigla._translate.x__field_path__mutmut_26": (
        'path.lstrip("XX.XX")',
        "a path never starts with 'X': steps with an upper-case first letter are left out",
    ),
}

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
_PLACEHOLDER = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]|\{[^{}]*\}")
_WORDS = re.compile(r"[A-Za-z']+\W+[A-Za-z']+")


def module_name(arg: str) -> str:
    """``_retry``, ``sigla/_retry.py`` and ``sigla._retry`` all name ``_retry``."""
    name = arg.removesuffix(".py").replace("/", ".").removeprefix("sigla.")
    if not (ROOT / "sigla" / (name.replace(".", "/") + ".py")).is_file():
        sys.exit(f"mutation: no module sigla/{name.replace('.', '/')}.py")
    return name


def default_tests(name: str) -> list[str]:
    own = f"tests/test_{name.rsplit('.', 1)[-1].lstrip('_')}.py"
    tests = [own] if (ROOT / own).is_file() else []
    tests += [t for t in EXTRA_TESTS.get(name, []) if (ROOT / t).is_file() and t not in tests]
    return tests or ["tests/"]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)  # a JSON string or number is a TOML one


def prepare(workdir: Path, name: str, tests: list[str]) -> None:
    """A fresh copy of the package and tests with this run's mutmut configuration."""
    try:
        from tomllib import loads
    except ModuleNotFoundError:  # Python 3.10: mutmut brings the toml package instead
        from toml import loads  # type: ignore[import-not-found,no-redef]

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "sigla", workdir / "sigla", ignore=ignore)
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore)
    project = loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    mutmut = dict(project.get("mutmut", {}))
    mutmut.update(
        only_mutate=[f"sigla/{name.replace('.', '/')}.py"],
        pytest_add_cli_args_test_selection=tests,
        use_git_change_detection=False,  # every run starts from scratch
    )
    if name in CLEAN_WORKERS:
        mutmut["process_isolation"] = "forkserver"
    lines = []
    for table, values in (
        ("pytest.ini_options", project["pytest"]["ini_options"]),
        ("mutmut", mutmut),
    ):
        lines.append(f"[tool.{table}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
        lines.append("")
    (workdir / "pyproject.toml").write_text("\n".join(lines), encoding="utf-8")


def _tokens(lines: list[str]) -> list[tuple[int, str]]:
    """The significant tokens of a fragment of code (a fragment may end mid-statement)."""
    found: list[tuple[int, str]] = []
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT}
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type not in skip and tok.type != tokenize.ENDMARKER:
                found.append((tok.type, tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return found


def is_prose(diff: str) -> bool:
    """Whether a mutant's diff only rewords message strings, keeping their placeholders."""
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
    old = _tokens([line[1:] for line in body if line.startswith("-")])
    new = _tokens([line[1:] for line in body if line.startswith("+")])
    changed = [(a, b) for a, b in zip(old, new, strict=False) if a != b]
    if not changed or len(old) != len(new):
        return False
    for (kind, before), (kind2, after) in changed:
        if kind != tokenize.STRING or kind2 != tokenize.STRING:
            return False
        text, text2 = _text_of(before), _text_of(after)
        if text is None or text2 is None or not _WORDS.search(text):
            return False
        if _PLACEHOLDER.findall(text) != _PLACEHOLDER.findall(text2):
            return False
    return True


_LITERAL = re.compile(r"([A-Za-z]*)('''|\"\"\"|'|\")(.*)\2", re.DOTALL)


def _text_of(token: str) -> str | None:
    """The text inside a str literal's quotes; None for a bytes literal (data, never prose).

    The prefix and quotes are left out, or ``b'"stream"'`` would read as two words."""
    found = _LITERAL.fullmatch(token)
    if found is None or "b" in found.group(1).lower():
        return None
    return found.group(3)


def changed_lines(diff: str) -> str:
    """The diff's removed and added lines, as ``-code`` and ``+code`` without indentation."""
    return "\n".join(
        line[0] + line[1:].strip()
        for line in diff.splitlines()
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))
    )


def run_mutmut(workdir: Path, mutmut: str, *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [mutmut, *args], cwd=workdir, check=False, text=True, capture_output=capture
    )
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout + result.stderr)
        sys.exit(f"mutation: `mutmut {' '.join(args)}` failed with exit code {result.returncode}")
    return result.stdout if capture else ""


def report(workdir: Path, mutmut: str, name: str, tests: list[str], seconds: float) -> int:
    statuses = {}
    for line in run_mutmut(workdir, mutmut, "results", "--all", "true", capture=True).splitlines():
        key, _, status = line.strip().rpartition(": ")
        if key:
            statuses[key] = status
    survivors = {key: status for key, status in statuses.items() if status not in KILLED}
    prose, equivalent, real, stale = [], [], [], []
    for key in sorted(survivors, key=_natural):
        diff = run_mutmut(workdir, mutmut, "show", key, capture=True)
        diff = diff.split("\n", 1)[1] if diff.startswith("# ") else diff
        if key in EQUIVALENT:
            marker, reason = EQUIVALENT[key]
            if marker in changed_lines(diff):
                equivalent.append((key, reason))
                continue
            stale.append(key)
        (prose if is_prose(diff) else real).append((key, survivors[key], diff))
    killed = len(statuses) - len(survivors)
    counted = len(statuses) - len(prose) - len(equivalent)
    score = 100.0 * killed / counted if counted else 100.0
    print()
    print(f"sigla/{name.replace('.', '/')}.py against {' '.join(tests)} ({seconds:.0f} s)")
    print(
        f"  {len(statuses)} mutants: {killed} killed, {len(survivors)} survived "
        f"({len(prose)} prose, {len(equivalent)} equivalent, {len(real)} to kill)"
    )
    print(f"  score {score:.1f} % ({killed} of {counted} mutants that count)")
    for key, reason in equivalent:
        print(f"  equivalent {key}: {reason}")
    for key in stale:
        print(f"  stale EQUIVALENT entry {key}: its mutant changed; check it again")
    for key, status, _ in prose:
        print(f"  prose {key} ({status})")
    for key, status, diff in real:
        print(f"\n  {status} {key}\n" + "\n".join("    " + line for line in diff.splitlines()))
    return 0


def _natural(key: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bash tests/mutation.sh", description="Mutation-test one module of sigla."
    )
    parser.add_argument("module", help="e.g. _retry, sigla/_limits.py")
    parser.add_argument("tests", nargs="*", help="test files to run (default: its own and e2e)")
    parser.add_argument(
        "--deselect",
        action="append",
        default=[],
        metavar="NODEID",
        help="a test to leave out, besides those in DESELECT (may be repeated)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="report the last run without running again"
    )
    args = parser.parse_args(argv)
    name = module_name(args.module)
    workdir = ROOT / ".mutation" / name
    mutmut = str(Path(sys.executable).parent / "mutmut")
    if not args.report_only:
        tests = args.tests or default_tests(name)
        for nodeid in [*DESELECT, *args.deselect]:
            if nodeid.split("::", 1)[0] in tests:
                tests += ["--deselect", nodeid]
        start = time.monotonic()
        prepare(workdir, name, tests)
        run_mutmut(workdir, mutmut, "run", "--max-children", "1")
        run = {"tests": tests, "seconds": round(time.monotonic() - start)}
        (workdir / "run.json").write_text(json.dumps(run) + "\n", encoding="utf-8")
    elif not (workdir / "run.json").is_file():
        sys.exit(f"mutation: no finished run of {name} to report; run it first")
    run = json.loads((workdir / "run.json").read_text(encoding="utf-8"))
    return report(workdir, mutmut, name, run["tests"], run["seconds"])


if __name__ == "__main__":
    sys.exit(main())
