"""Import time of ``sigla.llm`` against the mistralai client, in fresh interpreters.

Why: ``import sigla.llm`` is promised to be cheap (``mistralai`` and ``httpx`` load on the
first call), so scripts and the CLI start fast. Each run is a new ``python -c`` subprocess
that times the import alone with ``time.perf_counter()`` (interpreter start-up excluded);
the two imports alternate, after one untimed run of each to warm the file cache. The
baseline is the version-robust import of ``Mistral``. Report only: there is no bar.

    python benchmarks/bench_import.py            # 15 runs each
    python benchmarks/bench_import.py --quick    # a tiny run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _common import ROOT, interleaved, median, mistralai_version, result_line, row

HEAVY = ("mistralai", "httpx", "httpx2", "pydantic", "httpx_sse")

SIGLA = "import sigla.llm"
MISTRAL = """\
try:
    from mistralai.client import Mistral
except ImportError:
    from mistralai import Mistral
"""
PROBE = """\
import json, sys, time
started = time.perf_counter()
{statement}
elapsed = time.perf_counter() - started
heavy = {heavy!r}
print(json.dumps({{"seconds": elapsed, "loaded": [m for m in heavy if m in sys.modules]}}))
"""


def run_import(statement: str) -> dict[str, Any]:
    """Time ``statement`` in a fresh interpreter; also say which heavy modules it loaded."""
    code = PROBE.format(statement=statement, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def heaviest_imports(module: str, top: int = 5) -> list[tuple[str, float]]:
    """The direct imports of ``module`` costing most, from one ``python -X importtime`` run."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    children: list[tuple[str, float]] = []
    pending: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2].rstrip()
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # after one space of padding
        if depth == 1:
            pending.append((name.strip(), int(fields[1]) / 1e6))
        elif depth == 0:
            if name.strip() == module:
                children = pending
            pending = []
    return sorted(children, key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed imports of each")
    parser.add_argument("--quick", action="store_true", help="tiny run: 3 runs each")
    args = parser.parse_args()
    if args.quick:
        args.runs = 3

    runners = {
        "import sigla.llm": lambda: run_import(SIGLA),
        "import Mistral": lambda: run_import(MISTRAL),
    }
    interleaved(runners, 1, seed=1)  # warm the file cache and the bytecode caches
    runs = interleaved(runners, args.runs)
    seconds = {name: [float(r["seconds"]) for r in results] for name, results in runs.items()}

    print(
        f"bench_import: mistralai {mistralai_version()}, Python {sys.version.split()[0]}, "
        f"{args.runs} fresh interpreters each, interleaved"
    )
    print("import time (interpreter start-up excluded):")
    for name, series in seconds.items():
        print(row(name, series))
    sigla_s, mistral_s = median(seconds["import sigla.llm"]), median(seconds["import Mistral"])
    ratio = sigla_s / mistral_s
    saved = (mistral_s - sigla_s) * 1e3
    print(f"  ratio sigla.llm / Mistral   {ratio:8.3f}x (saves {saved:.1f} ms)")
    heaviest = ", ".join(
        f"{name} {cost * 1e3:.1f} ms" for name, cost in heaviest_imports("sigla.llm")
    )
    print(f"  sigla.llm's heaviest direct imports (one -X importtime run): {heaviest}")
    print(f"modules left in sys.modules (of {', '.join(HEAVY)}):")
    loaded = {
        name: sorted({m for r in results for m in r["loaded"]}) for name, results in runs.items()
    }
    for name, modules in loaded.items():
        print(f"  {name:<18} {', '.join(modules) or 'none'}")
    clean = not {"mistralai", "httpx"} & set(loaded["import sigla.llm"])
    print(f"  import sigla.llm leaves mistralai and httpx out: {'yes' if clean else 'NO'}")
    print(result_line("import", ratio, None))


if __name__ == "__main__":
    main()
