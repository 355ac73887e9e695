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

:func:`summarize_capsules` is a map-reduce: the capsules, best score first, are packed into
as few requests as fit the model's input limit (a capsule too long for one request is split
on paragraph, sentence or word boundaries, never dropped), each request is summarised, and
the partial summaries are summarised the same way until one remains. Capsule ids travel as
``[id]`` markers that the prompts ask the model to cite. Tokens are counted offline
(:mod:`sigla._tokens`), so :func:`plan_summary` can say what a run costs before it starts.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ._limits import RateLimits, github_tier
from ._packing import pack, split_text
from ._tokens import TokenCounter, counter_for
from .errors import InvalidRequestError
from .llm import GitHubLLM

__all__ = [
    "Capsule",
    "StagePlan",
    "SummaryPlan",
    "merge_capsules",
    "plan_summary",
    "MAP_PROMPT",
    "REDUCE_PROMPT",
    "DEFAULT_MAX_INPUT_TOKENS",
]

logger = logging.getLogger("sigla")

MAP_PROMPT = (
    "Summarise the knowledge capsules below for an engineer who has not read them. Keep "
    "every decision, cause, fix, number and name that matters; drop repetition. A capsule "
    "may begin with its id in square brackets, like [ops-12]: after each statement, cite "
    "the ids of the capsules it comes from in the same brackets. Answer with the summary "
    "only."
)
REDUCE_PROMPT = (
    "Each partial summary below covers part of one knowledge base. Merge them into one "
    "summary: keep every decision, cause, fix, number and name that matters, remove "
    "repetition, and keep the capsule ids in square brackets (like [ops-12]) that support "
    "each statement. Answer with the summary only."
)

DEFAULT_MAX_INPUT_TOKENS = 4_000
"""The budget of one request when neither the caller nor sigla knows the model's limit."""

# GitHub Models' input tokens per request, by rate-limit tier (free tier; contract §6).
GITHUB_INPUT_TOKENS = {"low": 8_000, "high": 8_000, "embeddings": 8_000}
GITHUB_REASONING_INPUT_TOKENS = 4_000  # o1/o3/gpt-5, their minis, DeepSeek-R1, Grok 3
MAX_ANSWER_TOKENS = 1_024  # max_tokens of each request: an eighth of the budget, capped
MESSAGE_OVERHEAD = 8  # tokens of the chat template around one user message
SEPARATOR = "\n\n"
_DAY = 86_400


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
        """Tokens left for capsules in a request that starts with ``prompt``."""
        fixed = self.counter.count(prompt + SEPARATOR) + MESSAGE_OVERHEAD
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


def _request(prompt: str, body: str) -> str:
    return f"{prompt}{SEPARATOR}{body}"


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
        [_request(prompt, b.text) for b in bodies],
        sum(fixed + b.tokens for b in bodies),
    )


# -- the plan


@dataclass(frozen=True)
class StagePlan:
    """One stage of a summary: ``map`` (the capsules) or a round of ``reduce``."""

    stage: Literal["map", "reduce"]
    requests: int
    input_tokens: int


@dataclass(frozen=True)
class SummaryPlan:
    """What :func:`summarize_capsules` would send, and how long the rate limits make it take.

    ``str(plan)`` reads like "1,000 capsules: 118 requests (..), 1 day at 150/day".
    ``seconds`` is when the last request may start under ``limits`` (answers' own time not
    counted), None when there are no limits to go by. Reduce rounds are estimated with
    every partial summary ``max_tokens`` long.
    """

    capsules: int
    split_capsules: int
    stages: tuple[StagePlan, ...]
    max_input_tokens: int
    budget_source: str
    max_tokens: int
    token_counter: str
    limits: RateLimits
    seconds: float | None

    @property
    def requests(self) -> int:
        """Requests in all stages."""
        return sum(s.requests for s in self.stages)

    @property
    def input_tokens(self) -> int:
        """Estimated input tokens of all requests."""
        return sum(s.input_tokens for s in self.stages)

    @property
    def days(self) -> int | None:
        """Daily quotas the requests use (``requests_per_day``), None without a daily cap."""
        per_day = self.limits.requests_per_day
        return math.ceil(self.requests / per_day) if per_day else None

    def __str__(self) -> str:
        reduce = [s.requests for s in self.stages[1:]]
        shape = f"{self.stages[0].requests:,} map"
        if reduce:
            rounds = "round" if len(reduce) == 1 else "rounds"
            shape += f" + {sum(reduce):,} reduce in {len(reduce)} {rounds}"
        return (
            f"{self.capsules:,} capsules: {self.requests:,} requests ({shape}), about "
            f"{self.input_tokens:,} input tokens; {self._time()}"
        )

    def _time(self) -> str:
        limits = self.limits
        per_minute = getattr(limits, "tokens_per_minute", None)
        if self.seconds is None:
            return "no rate limits known: the time depends on the server"
        if self.days is not None and self.days > 1:
            return f"{self.days:,} days at {limits.requests_per_day:,}/day"
        caps = [
            f"{limits.requests_per_minute}/min" if limits.requests_per_minute else "",
            f"{per_minute:,} tokens/min" if per_minute else "",
        ]
        at = " and ".join(c for c in caps if c)
        return f"{_duration(self.seconds)} at {at}" if at else "within a day"


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def _last_start(requests: int, tokens: int, limits: RateLimits) -> float | None:
    """When the last of ``requests`` may start under ``limits`` (seconds after the first)."""
    per_minute = limits.requests_per_minute
    per_day = limits.requests_per_day
    tokens_per_minute = getattr(limits, "tokens_per_minute", None)
    if not (per_minute or per_day or tokens_per_minute):
        return None
    before = max(requests - 1, 0)  # requests that go before the last one
    times = [0.0]
    if per_minute:
        times.append(before // per_minute * 60.0)
    if per_day:
        last_day = (before % per_day) // per_minute * 60.0 if per_minute else 0.0
        times.append(before // per_day * _DAY + last_day)
    if tokens_per_minute and requests:
        times.append(max(tokens - tokens / requests, 0) // tokens_per_minute * 60.0)
    return max(times)


def plan_summary(
    capsules: Iterable[object],
    *,
    llm: GitHubLLM | None = None,
    max_input_tokens: int | None = None,
    prompt: str | None = None,
    reduce_prompt: str | None = None,
) -> SummaryPlan:
    """What :func:`summarize_capsules` would send, before anything is sent.

    >>> print(plan_summary(capsules, llm=llm))           # doctest: +SKIP
    1,000 capsules: 121 requests (101 map + 20 reduce in 2 rounds), ...; 1 day at 150/day
    """
    llm = GitHubLLM() if llm is None else llm
    prompt, reduce_prompt = prompt or MAP_PROMPT, reduce_prompt or REDUCE_PROMPT
    run = _prepare(capsules, llm, max_input_tokens, prompt, reduce_prompt)
    stages = [StagePlan("map", len(run.requests), run.input_tokens)]
    budget = run.budget
    fixed = budget.max_input_tokens - budget.max_tokens - run.reduce_room
    partial = _partial_size(run.budget)
    per_request = run.reduce_room // partial  # at least 2, by _check_room
    left = len(run.requests)
    while left > 1:
        requests = math.ceil(left / per_request)
        stages.append(StagePlan("reduce", requests, requests * fixed + left * partial))
        left = requests
    total = sum(s.input_tokens for s in stages)
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
        seconds=_last_start(sum(s.requests for s in stages), total, limits),
    )
