"""Small helpers shared by the benchmark scripts: statistics, formatting, the SDK import.

The benchmarks compare sigla against a baseline measured in the same run, because absolute
timings on a shared machine mean little; these helpers keep their output uniform.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Settings that GitHubLLM would read from the environment and that would change what is measured.
_SIGLA_ENVS = ("SIGLA_LLM_PROVIDER", "SIGLA_LLM_ENDPOINT", "SIGLA_LLM_MODEL", "GITHUB_MODELS_ORG")


class FastClock:
    """A clock ``speed`` times faster than ``time.monotonic``, and sleeps that wait
    ``seconds / speed`` of real time, for a run under per-minute limits that lasts seconds:
    share it between the double (``clock=``) and the client (``clock=``, ``sleep=``,
    ``async_sleep=``).

    Unlike a clock that advances by each sleep (``tests/conftest.py``'s), it stays right when
    several threads sleep at once: time passes for all of them together, not once per sleeper.
    """

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.offset = 1000.0 - time.monotonic() * speed

    def __call__(self) -> float:
        return self.offset + time.monotonic() * self.speed

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)

    async def async_sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


def use_this_checkout(checkout: str | None = None) -> None:
    """Import sigla from this repository (or from ``checkout``, another source tree, to measure
    a before and an after) and ignore environment settings that would redirect it."""
    where = str(Path(checkout).resolve()) if checkout else str(ROOT)
    if where not in sys.path:
        sys.path.insert(0, where)
    for name in _SIGLA_ENVS:
        os.environ.pop(name, None)


def add_checkout_option(parser: Any) -> None:
    parser.add_argument(
        "--checkout",
        metavar="DIR",
        help="import sigla from this source tree instead (e.g. a `git archive` of main)",
    )


def sigla_origin() -> str:
    import sigla

    return str(Path(sigla.__file__).resolve().parent.parent)


def mistral_models() -> Any:
    """The module of mistralai's message classes (``mistralai.client.models`` or, in 1.x,
    ``mistralai.models``)."""
    import importlib

    return importlib.import_module(mistral_class().__module__.rpartition(".")[0] + ".models")


def mistral_class() -> type:
    """``Mistral``, imported the version-robust way (2.x/3.x first, then 1.x)."""
    try:
        from mistralai.client import Mistral  # type: ignore[attr-defined]
    except ImportError:
        from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
    return Mistral


def mistralai_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mistralai")
    except PackageNotFoundError:
        return "not installed"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (nearest rank), robust for the few hundred samples used here."""
    ordered = sorted(values)
    rank = max(1, -(-9 * len(ordered) // 10))  # ceil(0.9 n)
    return ordered[rank - 1]


def p10(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, len(ordered) // 10 - 1)] if len(ordered) >= 10 else ordered[0]


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios of two interleaved series (same round, same machine load)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]


def ratio_line(label: str, numerators: Sequence[float], denominators: Sequence[float]) -> str:
    """``label  X.XXXx of medians   paired per round: median X.XXXx, p10-p90 X.XX-X.XXx``."""
    of_medians = median(numerators) / median(denominators)
    paired = paired_ratios(numerators, denominators)
    return (
        f"  {label:<38} {of_medians:6.3f}x of medians   paired per round: median "
        f"{median(paired):.3f}x, p10-p90 {p10(paired):.2f}-{p90(paired):.2f}x"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} µs"


def row(label: str, values: Sequence[float], fmt: Callable[[float], str] = ms) -> str:
    """``label  median …  p90 …  (n=…)`` for one series of timings in seconds."""
    return (
        f"  {label:<28} median {fmt(median(values))}   p90 {fmt(p90(values))}   (n={len(values)})"
    )


def interleaved(
    runners: dict[str, Callable[[], Any]], rounds: int, *, seed: int = 0
) -> dict[str, list[Any]]:
    """Run every runner once per round, in a freshly shuffled order, and collect the results.

    Shuffling each round spreads machine noise and any first-in-round effect evenly over
    the contenders, so their medians stay comparable.
    """
    rng = random.Random(seed)
    names = list(runners)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            results[name].append(runners[name]())
    return results


def result_line(name: str, ratio: float | None, target: float | None) -> str:
    """The last line of every benchmark: ``RESULT <name> ratio=X.XXx target<=Y (PASS|MISS)``."""
    shown = "n/a" if ratio is None else f"{ratio:.2f}x"
    if target is None:
        return f"RESULT {name} ratio={shown} target=report"
    verdict = "PASS" if ratio is not None and ratio <= target else "MISS"
    return f"RESULT {name} ratio={shown} target<={target:.2f} ({verdict})"
