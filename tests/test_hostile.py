"""The hostile server itself (tests/hostile.py), checked with http.client and raw sockets."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import hostile
import pytest
from hostile import HostileServer

CHAT = "/v1/chat/completions"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


def connect(server: HostileServer, timeout: float = 5.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(
        "127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=timeout
    )


def post(
    server: HostileServer, body: Any = None, path: str = CHAT
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    conn = connect(server)
    payload = json.dumps(body or {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", path, payload, {"Content-Type": "application/json", "X-Probe": "1"})
    return conn.getresponse(), conn


def raw_request(server: HostileServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    return sock


def inflate(compressed: bytes, piece: int = 1 << 20) -> tuple[int, bytes]:
    """Inflate a gzip body in bounded pieces (never more than ``piece`` bytes at once)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    total, start, data = 0, b"", compressed
    while data or not inflater.eof:
        out = inflater.decompress(data, piece)
        assert len(out) <= piece
        start = start or out[:200]
        total += len(out)
        data = inflater.unconsumed_tail
        if not out and not data:
            break
    assert inflater.eof  # the trailer's CRC-32 and size were checked
    return total, start


def test_unscripted_requests_get_an_echo_a_stream_or_a_model_list(server: HostileServer) -> None:
    response, conn = post(server, {"messages": [{"role": "user", "content": "ping"}]})
    assert json.loads(response.read())["choices"][0]["message"]["content"] == "Echo: ping"
    conn.request("POST", CHAT, json.dumps({"messages": [{"content": "ping"}], "stream": True}))
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    body = response.read().decode()
    assert '"content": "Echo: ping"' in body and '"finish_reason": "stop"' in body
    assert body.endswith("data: [DONE]\n\n")
    conn.request("GET", "/v1/models")
    assert json.loads(conn.getresponse().read())["data"][0]["id"] == "m"
    conn.close()
    assert [r.method for r in server.requests] == ["POST", "POST", "GET"]
    assert server.requests[0].headers["x-probe"] == "1"
    assert server.requests[0].json() == {"messages": [{"role": "user", "content": "ping"}]}


def test_scripted_responses_are_taken_in_order(server: HostileServer) -> None:
    server.script(hostile.empty(204), hostile.redirect(), hostile.completion("hi", usage=False))
    conn = connect(server)
    seen = []
    for _ in range(4):
        conn.request("POST", CHAT, b"{}")
        response = conn.getresponse()
        seen.append((response.status, response.getheader("Location"), response.read()[:30]))
    conn.close()
    assert seen[0] == (204, None, b"")
    assert seen[1] == (307, "/redirected/v1/chat/completions", b"")
    assert seen[2][0] == 200 and b"usage" not in seen[2][2]
    assert seen[3][0] == 200  # the queue ran out: the echo again
    deadline = time.monotonic() + 2  # the server marks a response complete after sending it
    while not all(s.complete for s in server.sent) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [s.complete for s in server.sent] == [True] * 4


def test_drip_sends_one_byte_per_interval(server: HostileServer) -> None:
    server.script(hostile.drip(b"0123456789", 0.03), hostile.drip(b"{}", 0.005, headers_too=True))
    start = time.perf_counter()
    response, conn = post(server)
    assert response.read() == b"0123456789"
    assert 0.25 < time.perf_counter() - start < 1.5  # nine pauses of 0.03 s
    start = time.perf_counter()
    conn.request("POST", CHAT, b"{}")
    response = conn.getresponse()  # the status line and headers arrive byte by byte too
    assert time.perf_counter() - start > 0.2 and response.read() == b"{}"
    conn.close()


def test_a_client_hanging_up_stops_the_drip(server: HostileServer) -> None:
    server.script(hostile.drip(b"x" * 1000, 0.01))
    sock = raw_request(server)
    assert sock.recv(64).startswith(b"HTTP/1.1 200 OK")
    sock.close()
    assert server.wait_connections(0, timeout=1.0)
    sent = server.sent[0]
    assert not sent.complete and sent.bytes_sent < 200
    time.sleep(0.05)
    assert server.sent[0].bytes_sent == sent.bytes_sent


def test_open_connections_are_counted(server: HostileServer) -> None:
    first, second = raw_request(server), raw_request(server)
    for sock in (first, second):
        sock.recv(4096)
    assert server.open_connections == 2  # both answered and kept alive
    first.close()
    assert server.wait_connections(1)
    second.close()
    assert server.wait_connections(0)
    assert not server.wait_connections(-1, timeout=0.05)
    assert server.accepted == 2  # closed since, still counted


def test_a_stream_or_a_drip_can_keep_its_headers_and_first_event_waiting(
    server: HostileServer,
) -> None:
    server.script(
        hostile.sse([hostile.chunk("a")], head_after=0.2, first_after=0.2),
        hostile.drip(b"{}", 0.001, head_after=0.2),
    )
    start = time.perf_counter()
    response, conn = post(server)
    assert time.perf_counter() - start > 0.15 and response.status == 200
    body = response.read()
    assert time.perf_counter() - start > 0.35
    assert b'"content": "a"' in body and body.endswith(b"data: [DONE]\n\n")
    start = time.perf_counter()
    conn.request("POST", CHAT, b"{}")
    response = conn.getresponse()
    assert time.perf_counter() - start > 0.15 and response.read() == b"{}"
    conn.close()


def test_gathered_answers_come_only_once_all_their_requests_are_in(
    server: HostileServer,
) -> None:
    server.script(*hostile.gathered(3), *hostile.gathered(2, timeout=0.1))
    statuses: list[int] = []

    def ask() -> None:
        response, conn = post(server)
        statuses.append(response.status)
        response.read()
        conn.close()

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert statuses == [200, 200, 200]
    response, conn = post(server)  # alone: the other of its pair never comes
    assert response.status == 504
    conn.close()


@pytest.mark.parametrize("stream", [False, True])
def test_gzip_bomb_inflates_to_the_declared_size(server: HostileServer, stream: bool) -> None:
    size = (16 << 20) + 12345
    server.script(hostile.gzip_bomb(size, stream=stream))
    response, conn = post(server)
    compressed = response.read()
    conn.close()
    assert response.getheader("Content-Encoding") == "gzip"
    assert len(compressed) < size // 500
    total, start = inflate(compressed)
    assert total == size
    assert start.startswith(b"data: {" if stream else b'{"id":"chatcmpl-hostile"')


def test_the_default_bomb_is_about_a_megabyte_and_quick_to_build() -> None:
    start = time.perf_counter()
    body = hostile._gzip_bomb_bytes(1 << 30, False)
    assert time.perf_counter() - start < 1.0
    assert 900_000 < len(body) < 1_200_000
    assert int.from_bytes(body[-4:], "little") == 1 << 30  # ISIZE, modulo 2**32


def test_a_client_closing_a_huge_line_stops_the_download(server: HostileServer) -> None:
    server.script(hostile.huge_line(5 << 20), hostile.huge_line(1 << 30))
    response, conn = post(server)
    body = response.read()
    assert len(body) == 5 << 20 and b"\n" not in body and body.startswith(b"data: {")
    conn.request("POST", CHAT, b"{}")
    conn.getresponse().read(1 << 16)
    conn.close()
    assert server.wait_connections(0)
    assert not server.sent[1].complete and server.sent[1].bytes_sent < 64 << 20


def test_error_with_a_size_streams_that_much_json_filler(server: HostileServer) -> None:
    server.script(hostile.error(500, size=10 << 20), hostile.html_error(504))
    response, conn = post(server)
    assert response.status == 500 and response.getheader("Content-Length") == str(10 << 20)
    assert len(json.loads(response.read())["error"]["message"]) > 10_000_000
    conn.request("POST", CHAT, b"{}")
    response = conn.getresponse()
    assert (response.status, response.reason, response.getheader("Server")) == (
        504,
        "Gateway Time-out",
        "nginx",
    )
    assert response.read().startswith(b"<html>\r\n<head><title>504 Gateway Time-out</title>")
    conn.close()


def test_close_answers_nothing_and_cut_after_breaks_the_stream(server: HostileServer) -> None:
    server.script(hostile.close(), hostile.cut_after(2))
    with pytest.raises(http.client.RemoteDisconnected):
        post(server)
    response, conn = post(server)
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial.count(b"data: ") == 2 and b"[DONE]" not in cut.value.partial
    conn.close()


@pytest.mark.parametrize(
    ("response", "status", "expected"),
    [
        (hostile.openai_error(), 400, {"code": "context_length_exceeded", "param": "messages"}),
        (hostile.openai_error("model_not_found"), 404, {"type": "invalid_request_error"}),
        (hostile.azure_content_filter(), 400, {"code": "content_filter", "status": 400}),
        (hostile.llamacpp_context_error(5000, 4096), 400, {"n_prompt_tokens": 5000, "code": 400}),
        (hostile.litellm_rate_limit(7), 429, {"type": "throttling_error", "code": "429"}),
    ],
)
def test_named_error_bodies(
    server: HostileServer, response: hostile.Response, status: int, expected: dict[str, Any]
) -> None:
    server.script(response)
    answer, conn = post(server)
    error = json.loads(answer.read())["error"]
    conn.close()
    assert answer.status == status and error.items() >= expected.items()
    if status == 429:
        assert answer.getheader("llm_provider-retry-after") == "7"
        assert answer.getheader("retry-after") is None
    with pytest.raises(ValueError, match="known: context_length_exceeded"):
        hostile.openai_error("nope")


def test_stop_is_prompt_while_a_drip_is_under_way() -> None:
    server = HostileServer().__enter__()
    server.script(hostile.drip(b"x" * 1000, 0.5))
    sock = raw_request(server)
    sock.recv(64)
    start = time.perf_counter()
    server.__exit__(None, None, None)
    assert time.perf_counter() - start < 1.0
    sock.close()
