"""Running a command against the double: ``python -m sigla.testing [options] -- CMD [ARGS...]``.

The command runs as a child process with the double's address in its environment and the
parent's standard streams; the parent waits for it and exits with its status. The variables
are hard-coded here rather than read from sigla's configuration, since the double imports
nothing from the client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

__all__ = ["_CHILD_TOKEN", "_REDIRECTING", "_child_environment", "_run_command"]

_CHILD_TOKEN = "test"

# Variables that would send sigla elsewhere than the double, or hand a real credential to a
# run meant to be offline: the other providers' keys and endpoints, and the OpenAI-compatible
# key. GITHUB_MODELS_ORG and SIGLA_LLM_MODEL stay: requests still reach the double with them.
_REDIRECTING = (
    "AZURE_API_KEY",
    "AZURE_API_VERSION",
    "AZURE_ENDPOINT",
    "MISTRAL_API_KEY",
    "SIGLA_LLM_API_KEY",
)


def _child_environment(url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` pointed at the double: provider ``github``, its ``url``, a test token."""
    env = {name: value for name, value in environ.items() if name not in _REDIRECTING}
    env.update(SIGLA_LLM_PROVIDER="github", SIGLA_LLM_ENDPOINT=url, GITHUB_TOKEN=_CHILD_TOKEN)
    return env


class _Relay:
    """Signal handling while the parent waits for its child.

    Ctrl-C at a terminal reaches the whole foreground process group, the child included, so
    the parent ignores SIGINT and keeps waiting (the child decides whether to stop). A
    SIGTERM or SIGHUP sent to the parent alone (a cancelled CI job, a closed terminal) is
    passed on to the child, or kept for it if it is being started. The handlers are set
    before the child starts: it does not inherit them, as exec resets caught signals.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []

    def pass_on(self, signum: int, _frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(OSError):  # it may have just exited
            self.child.send_signal(signum)

    def started(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        for signum in self.pending:
            self.pass_on(signum, None)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Relay]:
        wanted: dict[int, Callable[[int, FrameType | None], None]] = {
            signal.SIGINT: lambda _signum, _frame: None
        }
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                wanted[getattr(signal, name)] = self.pass_on
        previous: dict[int, Any] = {}
        try:
            for signum, handler in wanted.items():
                previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: signals stay as they are
            pass
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)


def _run_command(command: Sequence[str], url: str, prog: str) -> int:
    """Run ``command`` against the double at ``url`` and return the exit status to use.

    The child's own status; 128 + N when signal N ended it; 127 when the command is not
    found and 126 when it cannot be run (as shells do), after one line on stderr.
    """
    env = _child_environment(url, os.environ)
    with _Relay().installed() as relay:
        try:
            child = subprocess.Popen(list(command), env=env)
        except FileNotFoundError:
            print(f"{prog}: command not found: {command[0]}", file=sys.stderr)
            return 127
        except OSError as exc:
            print(f"{prog}: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
            return 126
        relay.started(child)
        status = child.wait()
    return 128 - status if status < 0 else status
