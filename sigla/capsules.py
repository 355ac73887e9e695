"""Knowledge capsules: merge them into one text, or summarise any number of them with a model.

A capsule is a dict with ``text`` (or ``content``) and optional ``id``, ``title`` and
``score``; a plain string, or any object with a ``.text`` attribute, is one too.

Example::

    from sigla.capsules import merge_capsules, plan_summary, summarize_capsules
    from sigla.llm import GitHubLLM

    llm = GitHubLLM()
    print(merge_capsules(capsules))              # best score first, one text
    print(plan_summary(capsules, llm=llm))       # "10,000 capsules: 1,180 requests, ..."
    summary = summarize_capsules(capsules, llm=llm)
    rows = summarize_batch(records, llm=llm)   # one summary per record, for data engines

:func:`summarize_capsules` is a map-reduce: the capsules, best score first, are packed into
as few requests as fit the model's input limit (a capsule too long for one request is split
on paragraph, sentence or word boundaries, never dropped), each request is summarised, and
the partial summaries are summarised the same way until one remains. Capsule ids travel as
``[id]`` markers that the prompts ask the model to cite. Tokens are counted offline
(:mod:`sigla._tokens`), so :func:`plan_summary` can say what a run costs before it starts.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._limits import github_tier
from ._packing import pack, split_text
from ._plan import StagePlan, SummaryPlan, last_start
from ._tokens import TokenCounter, counter_for
from .errors import InvalidRequestError, InvalidResponseError
from .llm import GitHubLLM

__all__ = [
    "Capsule",
    "StagePlan",
    "SummaryPlan",
    "merge_capsules",
    "plan_summary",
    "summarize_capsules",
    "summarize_record",
    "summarize_batch",
    "MAP_PROMPT",  # noqa: F822 (module __getattr__: read from a packaged prompt file)
    "REDUCE_PROMPT",  # noqa: F822
    "DEFAULT_MAX_INPUT_TOKENS",
]

logger = logging.getLogger("sigla")

# The system messages of the two stages (the capsules or partial summaries are the user's)
# come from the prompt files sigla ships, copies of prompts/capsule-summary.prompt.yml and
# prompts/capsule-reduce.prompt.yml: MAP_PROMPT and REDUCE_PROMPT are read on first use.
_STAGE_FILES = {"MAP_PROMPT": "capsule-summary", "REDUCE_PROMPT": "capsule-reduce"}


@functools.cache
def _stage_prompt(name: str) -> str:
    """The system message of the packaged prompt file ``name`` (its user message is
    ``{{input}}``: the packed capsules, sent as they are)."""
    from .prompts import packaged_prompt

    return packaged_prompt(name).messages[0].content


def __getattr__(name: str) -> str:
    """``MAP_PROMPT`` and ``REDUCE_PROMPT``, read from the packaged prompt files."""
    if name in _STAGE_FILES:
        return _stage_prompt(_STAGE_FILES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_MAX_INPUT_TOKENS = 4_000
"""The budget of one request when neither the caller nor sigla knows the model's limit."""

# GitHub Models' input tokens per request, by rate-limit tier (free tier; contract §6).
GITHUB_INPUT_TOKENS = {"low": 8_000, "high": 8_000, "embeddings": 8_000}
GITHUB_REASONING_INPUT_TOKENS = 4_000  # o1/o3/gpt-5, their minis, DeepSeek-R1, Grok 3
MAX_ANSWER_TOKENS = 1_024  # max_tokens of each request: an eighth of the budget, capped
MESSAGE_OVERHEAD = 8  # tokens of the chat template around each of a request's two messages
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Capsule:
    """One knowledge capsule as sigla reads it; also accepted as input (it has ``.text``)."""

    text: str
    id: str | None = None
    title: str | None = None
    score: float | None = None

    def header(self, part: str = "") -> str:
        """``[id] title``, with what is present, and ``part`` (``"(part 2 of 3)"``) after."""
        bits = [f"[{self.id}]" if self.id else "", self.title or "", part]
        return " ".join(b for b in bits if b)

    def render(self, text: str | None = None, part: str = "") -> str:
        """The capsule as it is merged and sent: ``[id] text``, or the header line, then text."""
        body = self.text if text is None else text
        if self.title or (part and not self.id):
            return f"{self.header(part)}\n{body}"
        return f"{self.header(part)} {body}" if self.id else body


def _fail(index: int, item: object, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"Capsule {index} ({type(item).__name__}) {problem}.")


def _field(index: int, item: object, name: str, value: object) -> Any:
    if value is None:
        return None
    if name == "score":
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise _fail(index, item, f"has score {value!r:.40}: expected a finite number")
        return float(value)
    if name == "id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _fail(index, item, f"has a {type(value).__name__} {name}: expected a str")
    return value.strip() or None


def _capsule(index: int, item: object) -> Capsule:
    get: Callable[[str], object]
    if isinstance(item, str):
        text: object = item
        get = lambda name: None  # noqa: E731
    elif isinstance(item, Mapping):
        key = "content" if item.get("text") is None and "content" in item else "text"
        if key not in item:
            keys = ", ".join(repr(k)[:30] for k in list(item)[:8]) or "none"
            raise _fail(index, item, f"has neither 'text' nor 'content' (its keys: {keys})")
        text, get = item[key], item.get
    elif hasattr(item, "text") and not isinstance(item, (bytes, bytearray)):
        text = item.text
        get = lambda name: getattr(item, name, None)  # noqa: E731
    else:
        raise _fail(
            index,
            item,
            "is not a capsule: expected a dict with 'text' or 'content', "
            "a str, or an object with a .text attribute",
        )
    if not isinstance(text, str):
        raise _fail(index, item, f"has a {type(text).__name__} text: expected a str")
    if not text.strip():
        raise _fail(index, item, "has an empty text")
    return Capsule(
        text=text.strip(),
        id=_field(index, item, "id", get("id")),
        title=_field(index, item, "title", get("title")),
        score=_field(index, item, "score", get("score")),
    )


def _read(capsules: Iterable[object]) -> list[Capsule]:
    """The capsules as :class:`Capsule` objects, best score first (stable; no score last)."""
    if isinstance(capsules, (str, bytes, Mapping)) or not isinstance(capsules, Iterable):
        raise InvalidRequestError(
            f"capsules must be a list (or any iterable) of capsules, not a "
            f"{type(capsules).__name__}; wrap a single capsule in a list."
        )
    read = [_capsule(i, item) for i, item in enumerate(capsules)]
    return sorted(read, key=lambda c: (c.score is None, -(c.score or 0.0)))


def merge_capsules(capsules: Iterable[object]) -> str:
    """All capsules in one text, highest score first, separated by blank lines.

    Each is prefixed by ``[id]`` and its title when it has them; equal scores keep their
    order and capsules without a score come last. An empty list gives ``""``.
    """
    return SEPARATOR.join(c.render() for c in _read(capsules))


# -- the budget of one request


@dataclass(frozen=True)
class _Budget:
    max_input_tokens: int
    source: str
    max_tokens: int
    counter: TokenCounter

    def room(self, prompt: str) -> int:
        """Tokens left for capsules in a request whose system message is ``prompt``."""
        fixed = self.counter.count(prompt) + 2 * MESSAGE_OVERHEAD
        return self.max_input_tokens - self.max_tokens - fixed


def _known_limit(llm: GitHubLLM) -> tuple[int, str] | None:
    if llm.provider == "github" and urlsplit(llm.endpoint).hostname == "models.github.ai":
        tier = github_tier(llm.model)
        limit = GITHUB_INPUT_TOKENS.get(tier, GITHUB_REASONING_INPUT_TOKENS)
        return limit, f"GitHub's input limit for the {tier!r} tier"
    return None


def _budget(llm: GitHubLLM, max_input_tokens: int | None) -> _Budget:
    if max_input_tokens is not None:
        if isinstance(max_input_tokens, bool) or not isinstance(max_input_tokens, int):
            raise InvalidRequestError(
                f"max_input_tokens must be an int, not {type(max_input_tokens).__name__}."
            )
        limit, source = max_input_tokens, "max_input_tokens="
    elif (known := _known_limit(llm)) is not None:
        limit, source = known
    else:
        limit, source = DEFAULT_MAX_INPUT_TOKENS, "sigla's default (the model's limit is unknown)"
        warnings.warn(
            f"sigla does not know how many input tokens {llm.model!r} at "
            f"{llm.settings.display_endpoint} accepts, so it packs capsules into requests of "
            f"{DEFAULT_MAX_INPUT_TOKENS:,} tokens. Pass max_input_tokens= (the model's context "
            "length): a local server may silently cut a longer prompt, losing capsules.",
            stacklevel=4,
        )
    max_tokens = min(MAX_ANSWER_TOKENS, max(64, limit // 8))
    return _Budget(limit, source, max_tokens, counter_for(llm.model))


def _partial_size(budget: _Budget) -> int:
    """Tokens a partial summary is expected to take in a reduce request (a full answer)."""
    count = budget.counter.count
    return budget.max_tokens + count("Partial summary 9999\n") + count(SEPARATOR)


def _check_room(budget: _Budget, prompt: str, reduce_prompt: str) -> tuple[int, int]:
    """The room for capsules in a map and in a reduce request; an error if either is too small."""
    rooms = budget.room(prompt), budget.room(reduce_prompt)
    # A reduce request must hold two partial summaries, or the reduction never ends.
    needed = 2 * _partial_size(budget)
    if min(rooms) < needed:
        raise InvalidRequestError(
            f"max_input_tokens={budget.max_input_tokens:,} leaves {min(rooms):,} tokens per "
            f"request once the prompt and the answer's {budget.max_tokens:,} tokens are "
            f"taken; summarising needs at least {needed:,}. Pass a larger max_input_tokens= "
            "or a shorter prompt."
        )
    return rooms


# -- packing


@dataclass(frozen=True)
class _Entry:
    text: str
    tokens: int


def _entries(capsule: Capsule, room: int, count: Callable[[str], int]) -> list[_Entry]:
    """The capsule as one entry, or as parts that each fit ``room``.

    An entry's ``tokens`` include the separator that may precede it in a request.
    """
    sep = count(SEPARATOR)
    whole = capsule.render()
    tokens = count(whole)
    if tokens <= room:
        return [_Entry(whole, tokens + sep)]
    widest = count(capsule.render("", part="(part 9999 of 9999)")) + 1
    if widest > room // 2:
        raise InvalidRequestError(
            f"Capsule {capsule.header()[:60]!r}'s id and title alone take {widest:,} tokens of "
            f"a request's {room:,}: shorten them or pass a larger max_input_tokens=."
        )
    limit = room - widest
    while True:  # a tokenizer may merge across the header's line break: then cut finer
        parts = [p.strip() for p in split_text(capsule.text, limit, count)]
        parts = [p for p in parts if p]
        n = len(parts)
        rendered = [capsule.render(p, part=f"(part {i} of {n})") for i, p in enumerate(parts, 1)]
        sizes = [count(r) for r in rendered]
        if max(sizes) <= room:
            return [_Entry(r, size + sep) for r, size in zip(rendered, sizes, strict=True)]
        limit -= max(1, limit // 20)


def _packs(entries: Sequence[_Entry], room: int, count: Callable[[str], int]) -> list[_Entry]:
    """The bodies of the requests: entries packed best-first, joined by blank lines."""
    # Every size counts a separator; the first entry of a pack has none, hence the extra room.
    sep = count(SEPARATOR)
    groups = pack([e.tokens for e in entries], room + sep)
    return [
        _Entry(SEPARATOR.join(entries[i].text for i in g), sum(entries[i].tokens for i in g) - sep)
        for g in groups
    ]


@dataclass(frozen=True)
class _Run:
    """Everything decided before the first request: the budget and the map stage's requests."""

    capsules: int
    split: int
    budget: _Budget
    map_room: int
    reduce_room: int
    requests: list[str]
    input_tokens: int  # estimated, of all map requests


def _prepare(
    capsules: Iterable[object],
    llm: GitHubLLM,
    max_input_tokens: int | None,
    prompt: str,
    reduce_prompt: str,
) -> _Run:
    read = _read(capsules)
    if not read:
        raise InvalidRequestError("No capsules to summarise: the list is empty.")
    budget = _budget(llm, max_input_tokens)
    map_room, reduce_room = _check_room(budget, prompt, reduce_prompt)
    count = budget.counter.count
    entries: list[_Entry] = []
    split = 0
    for capsule in read:
        made = _entries(capsule, map_room, count)
        split += len(made) > 1
        entries.extend(made)
    bodies = _packs(entries, map_room, count)
    fixed = budget.max_input_tokens - budget.max_tokens - map_room  # prompt and template
    return _Run(
        len(read),
        split,
        budget,
        map_room,
        reduce_room,
        [b.text for b in bodies],
        sum(fixed + b.tokens for b in bodies),
    )


def _reduce_requests(answers: Sequence[str], run: _Run) -> list[str]:
    count = run.budget.counter.count
    partials = [Capsule(a.strip(), title=f"Partial summary {i}") for i, a in enumerate(answers, 1)]
    entries = [e for p in partials if p.text for e in _entries(p, run.reduce_room, count)]
    return [b.text for b in _packs(entries, run.reduce_room, count)]


# -- the plan


def plan_summary(
    capsules: Iterable[object],
    *,
    llm: GitHubLLM | None = None,
    max_input_tokens: int | None = None,
    prompt: str | None = None,
    reduce_prompt: str | None = None,
) -> SummaryPlan:
    """What :func:`summarize_capsules` would send and how long it would take; sends nothing.

    >>> print(plan_summary(capsules, llm=GitHubLLM()))  # doctest: +SKIP
    1,000 capsules: 136 requests (112 map + 24 reduce in 3 rounds), about 836,000 input
    tokens; about 9 min at 15/min
    """
    llm = GitHubLLM() if llm is None else llm
    prompt = prompt or _stage_prompt("capsule-summary")
    reduce_prompt = reduce_prompt or _stage_prompt("capsule-reduce")
    run = _prepare(capsules, llm, max_input_tokens, prompt, reduce_prompt)
    stages = [StagePlan("map", len(run.requests), run.input_tokens)]
    budget = run.budget
    fixed = budget.max_input_tokens - budget.max_tokens - run.reduce_room
    partial = _partial_size(run.budget)
    per_request = run.reduce_room // partial  # at least 2, by _check_room
    left = len(run.requests)
    while left > 1:
        merged = math.ceil(left / per_request)
        stages.append(StagePlan("reduce", merged, merged * fixed + left * partial))
        left = merged
    requests = sum(s.requests for s in stages)
    # The limiter books each request's prompt and its max_tokens against tokens_per_minute.
    booked = sum(s.input_tokens for s in stages) + requests * budget.max_tokens
    limits = llm.settings.limits
    return SummaryPlan(
        capsules=run.capsules,
        split_capsules=run.split,
        stages=tuple(stages),
        max_input_tokens=run.budget.max_input_tokens,
        budget_source=run.budget.source,
        max_tokens=run.budget.max_tokens,
        token_counter=run.budget.counter.name,
        limits=limits,
        seconds=last_start(requests, booked, limits),
    )


# -- the summary


def summarize_capsules(
    capsules: Iterable[object],
    *,
    llm: GitHubLLM | None = None,
    max_input_tokens: int | None = None,
    prompt: str | None = None,
    reduce_prompt: str | None = None,
    progress: bool | None = None,
    concurrency: int | None = None,
) -> str:
    """One summary of all ``capsules``, citing their ids, however many there are.

    Map-reduce through ``llm.map``: the capsules (best score first) are packed into requests
    of at most ``max_input_tokens`` (default: the model's limit where sigla knows it, else
    :data:`DEFAULT_MAX_INPUT_TOKENS` with a warning), each is summarised under the system
    message ``prompt`` (:data:`MAP_PROMPT`), then the partial summaries under
    ``reduce_prompt`` (:data:`REDUCE_PROMPT`) until one remains. Each answer may take an
    eighth of the budget (at most 1,024 tokens). ``progress`` and ``concurrency`` go to
    each ``llm.map``.
    Call :func:`plan_summary` first to see the cost. A failed request raises
    :class:`~sigla.errors.BatchError`, whose ``results`` hold the answers that came back.
    """
    llm = GitHubLLM() if llm is None else llm
    prompt = prompt or _stage_prompt("capsule-summary")
    reduce_prompt = reduce_prompt or _stage_prompt("capsule-reduce")
    run = _prepare(capsules, llm, max_input_tokens, prompt, reduce_prompt)
    max_tokens = run.budget.max_tokens
    logger.info("summarising %d capsules: %d map requests", run.capsules, len(run.requests))
    options: dict[str, Any] = {
        "progress": progress,
        "concurrency": concurrency,
        "max_tokens": max_tokens,
    }
    answers = llm.map(run.requests, system=prompt, **options)
    while len(answers) > 1:
        requests = _reduce_requests(answers, run)
        if not requests:
            raise InvalidResponseError("Every partial summary the model returned is empty.")
        if len(requests) >= len(answers):
            raise InvalidResponseError(
                f"The {len(answers)} partial summaries are too long to merge two per request "
                f"within max_input_tokens={run.budget.max_input_tokens:,}; pass a larger one."
            )
        logger.info("reducing %d partial summaries in %d requests", len(answers), len(requests))
        answers = llm.map(requests, system=reduce_prompt, **options)
    return answers[0].strip() if answers else ""


# The per-record face for data engines lives in its own module; it is part of this API.
from ._capsule_records import summarize_batch, summarize_record  # noqa: E402
