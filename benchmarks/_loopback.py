"""A minimal chat-completions server on 127.0.0.1, run in a process of its own.

Why: ``sigla.testing.FakeGitHubModels`` is faithful, but it is a ``ThreadingHTTPServer``
that parses, records and checks every request; in the benchmark's own process its threads
compete for the GIL with the client being measured, and its cost per request is several
times a raw HTTP post's. This server does as little as possible, in another process, so what
the client pays is what shows: it reads a request, and answers

- a non-streamed request with a fixed chat completion (text ``Echo: hi``);
- a streamed one (``"stream": true`` in the body) with :data:`CHUNKS` content events in one
  write, azure-style (every chunk has ``id`` and ``model``, which the bare SDK needs), then
  a finish chunk with usage and ``[DONE]``;
- a streamed one for model :data:`HOLD_MODEL` with its first content event only, keeping the
  stream open until the client goes away (memory per open stream).

It is Azure/OpenAI-shaped and unrelated to the double's contract: routes are not checked.
:func:`serve` also runs the double itself in a child process (``kind="fake"``, Azure-style
streams, which the bare SDK can parse), for a run against the faithful server.

    python benchmarks/_loopback.py          # prints "URL <base>" and serves until stdin closes
    python benchmarks/_loopback.py --fake SIGLA_TREE   # the same for FakeGitHubModels
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HOLD_MODEL = "bench/hold"
CHUNKS = 20
ANSWER = "Echo: hi"

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "codestral-2501",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
).encode()


def _event(content: str | None, finish: str | None = None, usage: bool = False) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "codestral-2501",
        "choices": [
            {
                "index": 0,
                "delta": {} if content is None else {"content": content},
                "finish_reason": finish,
            }
        ],
    }
    if usage:
        chunk["usage"] = {"prompt_tokens": 9, "completion_tokens": CHUNKS, "total_tokens": 29}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


PIECES = [f"word{i} " for i in range(CHUNKS)]
_STREAM_FIRST = _chunked(_event(PIECES[0]))
_STREAM_REST = (
    _chunked(
        b"".join(_event(p) for p in PIECES[1:])
        + _event(None, "stop", usage=True)
        + b"data: [DONE]\n\n"
    )
    + b"0\r\n\r\n"
)
_PLAIN_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    % len(_COMPLETION)
)
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            streamed = b'"stream":true' in body.replace(b" ", b"")
            if not streamed:
                writer.write(_PLAIN_HEAD + _COMPLETION)
                await writer.drain()
                continue
            if HOLD_MODEL.encode() in body:
                writer.write(_STREAM_HEAD + _STREAM_FIRST)
                await writer.drain()
                await reader.read()  # until the client closes the stream
                return
            writer.write(_STREAM_HEAD + _STREAM_FIRST + _STREAM_REST)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"URL http://127.0.0.1:{port}/inference", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed: asyncio.Future[None] = loop.create_future()

    def on_stdin() -> None:
        if not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await stdin_closed
    os._exit(0)  # no goodbyes: connections still open are the client's business


def _fake(tree: str) -> None:
    """Serve ``sigla.testing.FakeGitHubModels`` (from the source tree ``tree``) until stdin
    closes."""
    sys.path.insert(0, tree)
    from sigla.testing import FakeGitHubModels

    with FakeGitHubModels(stream_style="azure", max_input_tokens=None) as fake:
        print(f"URL {fake.url}", flush=True)
        sys.stdin.read()
    os._exit(0)


@contextmanager
def serve(kind: str = "loopback", tree: str = "") -> Iterator[str]:
    """Start a server in a child process and yield its base URL (an ``endpoint=`` for sigla,
    a ``server_url=`` for mistralai). ``kind``: ``loopback`` (this module's minimal server)
    or ``fake`` (the double, imported from the source tree ``tree``)."""
    command = [sys.executable, os.path.abspath(__file__)]
    if kind == "fake":
        command += ["--fake", tree]
    elif kind != "loopback":
        raise ValueError(f"unknown server kind {kind!r}")
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        if line[:1] != ["URL"]:
            raise RuntimeError(f"the {kind} server did not start: {line!r}")
        yield line[1]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fake"]:
        _fake(sys.argv[2])
    else:
        asyncio.run(_main())
