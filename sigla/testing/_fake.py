"""The double itself: :class:`FakeGitHubModels` (lifecycle, scripting, inspection, the checks
and limits applied to each request) and :class:`RecordedRequest`, an entry of its request log.

The HTTP plumbing lives in :mod:`sigla.testing._http`; the double implements the small
interface it serves (``_http._Service``) and hands each exchange a callback that records the
answered status, so the plumbing never needs to know this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._contract import (
    _DAY,
    _FAULT_PARAMS,
    _MODEL_FORMAT_BODY,
    _MODIFIERS,
    _REPLY_MODES,
    FAULTS,
    ReplyMode,
    Retirement,
    Route,
    StreamStyle,
    _Fault,
)
from ._http import _GITHUB_MODEL_ID, _METHODS, _Exchange, _Handler, _Incoming, _Server, _sha256
from ._payloads import (
    _Answer,
    _azure_unauthorized,
    _bad_credentials,
    _completion_body,
    _default_catalog,
    _default_reply,
    _dumps,
    _embeddings_body,
    _error,
    _estimate_tokens,
    _fault_answer,
    _fingerprint,
    _json_answer,
    _message_texts,
    _model_list,
    _Outcome,
    _rate_limited,
    _requested_tokens,
    _retirement,
    _served_name,
    _server_error,
    _split_pieces,
    _stream_events,
    _text_answer,
    _too_large,
    _usage,
)

__all__ = ["FakeGitHubModels", "RecordedRequest"]


@dataclass(frozen=True)
class _Reply:
    text: str | None
    finish_reason: str | None
    usage: dict[str, Any] | None
    chunks: tuple[str, ...] | None
    model: str | None
    tool_calls: tuple[dict[str, Any], ...] | None


# --------------------------------------------------------------------------------------
# The request log
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the double saw it, credentials redacted.

    ``headers`` has lower-cased names; ``authorization`` reads ``"Bearer ***"`` and
    ``api-key`` reads ``"***"``. ``body`` is the parsed JSON (``None`` when absent or not
    JSON). ``status`` is the HTTP status answered, ``0`` while the request is being worked
    on and for requests deliberately left without any answer (the ``disconnect`` fault):
    the log entry is swapped for an updated copy once the status is known, so read
    ``fake.requests`` again rather than keeping an old entry. ``received_at``, each
    ``chunk_times`` entry and ``finished_at`` are :func:`time.perf_counter` readings: when
    the request had been read, right after each SSE content event was written to the socket,
    and right after the answer's last bytes were (``None`` while it is being written and for
    an answer that never completed: a cut stream, a client gone). The in-flight slot is
    freed just *before* those last bytes, so a client's next request may be read a moment
    before ``finished_at`` is taken: allow for that when computing overlaps from the log.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    org: str | None
    route: Route | None
    status: int
    received_at: float
    chunk_times: list[float] = field(default_factory=list)
    finished_at: float | None = None
    token_sha256: str | None = field(default=None, repr=False)

    @property
    def model(self) -> str | None:
        """The ``model`` field of a JSON body, if any."""
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return self.body["model"]
        return None

    @property
    def stream(self) -> bool:
        """Whether the body asked for a stream (``"stream": true``)."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


# --------------------------------------------------------------------------------------
# The double
# --------------------------------------------------------------------------------------


def _tokens_wait(booked: deque[tuple[float, int]], cost: int, limit: int, now: float) -> int | None:
    """Whole seconds until ``cost`` more tokens fit under ``limit`` in the 60 s window that
    ``booked`` ((time, tokens), oldest first, pruned here) describes; None if they fit now."""
    while booked and booked[0][0] <= now - 60:
        booked.popleft()
    excess = sum(tokens for _at, tokens in booked) + cost - limit
    if excess <= 0:
        return None
    if cost > limit:
        return 60  # never fits: the whole window, as for a request over the real limit
    for at, tokens in booked:
        excess -= tokens
        if excess <= 0:
            return max(1, math.ceil(at + 60 - now))
    raise AssertionError("unreachable: the booked tokens exceed the excess")


class FakeGitHubModels:
    """A GitHub Models service on loopback, scriptable per request, for tests.

    Start it with ``with FakeGitHubModels() as fake:`` (or :meth:`start`/:meth:`stop`) and
    point a client at :attr:`url`. Script answers with :meth:`reply`, :meth:`fail` and
    :meth:`retire`; inspect what arrived with :attr:`requests`, what is still being
    answered with :attr:`in_flight` and the most ever answered at once with
    :attr:`max_in_flight`.

    Keyword options (all but ``host``, ``port``, ``tokens``, ``catalog`` and ``clock`` are
    plain attributes that a test may change while the double runs):

    - ``latency``: seconds to wait before every answer (counted as in flight).
    - ``chunk_delay``: seconds between SSE events of a stream.
    - ``stream_style``: ``"github"`` (first chunk without ``model``, usage on the
      ``finish_reason`` chunk), ``"azure"`` (same, first chunk has ``"model": ""``) or
      ``"openai"`` (no filter chunk; usage in a last ``choices: []`` chunk when the
      request sets ``stream_options.include_usage``).
    - ``reply_mode``: what an unscripted chat request gets: ``"echo"`` (``"Echo: <last user
      message>"``) or ``"extractive"`` (the first sentence of each paragraph of the last user
      message, one per line, with a leading list marker or id such as ``[cap-12]`` kept), so
      that a summarising program's output reads like a summary. Usage counts what is sent.
    - ``rpm`` / ``daily``: requests per model per token in a sliding 60 s / 24 h window
      measured with ``clock``; over it, a 429 with the real headers. ``None``: off.
    - ``tpm``: estimated tokens per model per token in a sliding 60 s window on ``clock``.
      A request books its input estimate (as for ``max_input_tokens``) plus its
      ``max_tokens`` (or ``max_completion_tokens``) when given, at arrival; over the limit,
      a 429 of type ``UserByModelByMinuteTokens`` saying how many seconds until enough
      tokens leave the window. A request estimated above ``tpm`` on its own never fits: its
      429 asks for the whole window, 60 s, as the real services refuse a request larger
      than the limit. Embeddings book their input. ``None``: off.
    - ``concurrency``: chat and embeddings requests in flight per token (a stream is in
      flight until its last byte); over it, a 429 with ``retry-after: 0``. ``None``: off.
    - ``tokens``: the accepted bearer tokens (kept only as SHA-256 digests); ``None``
      accepts any non-empty one.
    - ``max_input_tokens``: chat input cap, estimated as ceil(characters of message contents
      / 4); over it, ``413 tokens_limit_reached``. ``None``: off.
    - ``catalog``: the entries of ``GET /catalog/models`` and the model ids GitHub routes
      accept (case-insensitively); defaults to a realistic catalog of eight models.
    - ``clock``: the time source of the ``rpm``/``tpm``/``daily`` windows, so tests can move
      time.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        stream_style: StreamStyle = "github",
        reply_mode: ReplyMode = "echo",
        rpm: int | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        daily: int | None = None,
        tokens: Iterable[str] | None = None,
        max_input_tokens: int | None = 8000,
        catalog: list[dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stream_style not in ("github", "azure", "openai"):
            raise ValueError(
                f"stream_style must be 'github', 'azure' or 'openai', not {stream_style!r}"
            )
        self.host = host
        self.port = port
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.stream_style: StreamStyle = stream_style
        self.reply_mode = reply_mode
        self.rpm = rpm
        self.tpm = tpm
        self.concurrency = concurrency
        self.daily = daily
        self.max_input_tokens = max_input_tokens
        self._token_hashes = None if tokens is None else frozenset(_sha256(t) for t in tokens)
        self._catalog = _default_catalog() if catalog is None else [dict(e) for e in catalog]
        self._model_ids = {str(e.get("id", "")).lower() for e in self._catalog}
        self._clock = clock
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._replies: deque[_Reply] = deque()
        self._retired: str | None = None
        self._minute: dict[tuple[str, str], deque[float]] = {}
        self._day: dict[tuple[str, str], deque[float]] = {}
        self._minute_tokens: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._in_flight: dict[str, int] = {}
        self._max_in_flight = 0
        self._served: dict[str, list[int]] = {}  # model -> [requests, tokens] for x-ratelimit-*
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def reply_mode(self) -> ReplyMode:
        """The reply to unscripted chat requests: ``"echo"`` or ``"extractive"`` (settable)."""
        return self._reply_mode

    @reply_mode.setter
    def reply_mode(self, mode: ReplyMode) -> None:
        if mode not in _REPLY_MODES:
            raise ValueError(f"reply_mode must be 'echo' or 'extractive', not {mode!r}")
        self._reply_mode: ReplyMode = mode

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeGitHubModels:
        """Start serving in a daemon thread (idempotent) and return self."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"FakeGitHubModels:{self._server.server_port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving promptly, closing open keep-alive connections and cutting any wait."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()  # first, so that woken waits answer nobody
        self._stopping.set()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> FakeGitHubModels:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running double."""
        if self._server is None:
            raise RuntimeError(
                "FakeGitHubModels is not running: call start() or use it as a context manager"
            )
        address = self._server.server_address[0]
        host = address.decode() if isinstance(address, bytes) else str(address)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._server.server_port}"

    @property
    def url(self) -> str:
        """The inference endpoint, ``http://HOST:PORT/inference`` (a mistralai ``server_url``)."""
        return f"{self.base_url}/inference"

    def org_url(self, org: str) -> str:
        """The organization-billed inference endpoint, ``http://HOST:PORT/orgs/{org}/inference``."""
        return f"{self.base_url}/orgs/{org}/inference"

    # -- scripting ---------------------------------------------------------------------

    def reply(
        self,
        text: str | None,
        *,
        finish_reason: str | None = "stop",
        usage: dict[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
        model: str | None = None,
        tool_calls: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Queue the answer of the next successful chat request, delivered exactly as given.

        ``chunks`` sets the stream's content pieces (a non-stream answer uses ``text``, or
        the joined chunks when ``text`` is None); otherwise the text is split into pieces of
        one to three words. ``text=None`` without chunks answers ``content: null``.
        ``usage`` replaces the estimated usage object; ``model`` replaces the served model
        name; ``tool_calls`` are OpenAI-shaped calls (pair them with
        ``finish_reason="tool_calls"``).
        ``max_tokens`` and ``stop`` are not applied to scripted replies.
        """
        scripted = _Reply(
            text,
            finish_reason,
            dict(usage) if usage is not None else None,
            tuple(chunks) if chunks is not None else None,
            model,
            tuple(tool_calls) if tool_calls is not None else None,
        )
        with self._lock:
            self._replies.append(scripted)

    def fail(self, name: str, times: int | None = 1, **params: Any) -> None:
        """Queue fault ``name`` (one of :data:`FAULTS`) for the next ``times`` inference requests.

        ``times=None`` applies it to every request from now on (until :meth:`reset`).
        Faults apply in the order queued, before authentication, and consume no scripted
        reply unless they deliver one (``timeout`` and the ``stream_*`` faults do).
        Parameters: ``model`` (no_access, unknown_model, tokens_limit), ``limit``
        (tokens_limit, rate_limit_*), ``retry_after`` (rate_limit_*; defaults 9, 5631, 0),
        ``ratelimit_type`` (rate_limit_minute), ``status``/``message`` (server_error;
        502/504 answer gateway HTML, 503 plain text), ``seconds`` (timeout; default 30, then
        answer normally), ``after`` (content chunks sent before stream_cut drops the
        connection, stream_stall goes silent, or stream_error_event sends its error;
        default 1), ``seconds`` (stream_stall: how long it stays silent before dropping the
        connection; default 30), ``message`` (stream_error_event), ``text``/``category``
        (content_filter: partial content, default null, and the category marked filtered,
        default ``"violence"``). On a non-stream request stream_cut and stream_stall
        disconnect, stream_error_event answers 500 and stream_no_finish answers
        ``finish_reason: null``.
        """
        if name not in _FAULT_PARAMS:
            raise ValueError(f"unknown fault {name!r}; expected one of: {', '.join(FAULTS)}")
        unknown = set(params) - _FAULT_PARAMS[name]
        if unknown:
            allowed = ", ".join(sorted(_FAULT_PARAMS[name])) or "none"
            raise TypeError(
                f"fault {name!r} got unexpected parameters {sorted(unknown)}; accepts: {allowed}"
            )
        if times is not None and times < 1:
            raise ValueError("times must be a positive integer or None")
        with self._lock:
            self._faults.append(_Fault(name, dict(params), times))

    def retire(self, kind: Retirement | int = "410") -> None:
        """Answer every GitHub-route request as the retired service did, until :meth:`reset`.

        ``"410"``: the brownout answer (410 Gone, JSON envelope); ``"403"``: an empty 403
        with ``Deprecation``/``Link``/``Sunset`` headers; ``"404"``: the same as a 404. The
        Azure and ``/v1`` routes keep working, as the successor services did.
        """
        name = str(kind)
        if name not in ("410", "403", "404"):
            raise ValueError(f"retire() takes '410', '403' or '404', not {name!r}")
        with self._lock:
            self._retired = name

    def reset(self) -> None:
        """Forget queued replies and faults, the request log, retirement and the limit windows.

        :attr:`max_in_flight` restarts from the requests still in flight.
        """
        with self._lock:
            self._max_in_flight = max(self._in_flight.values(), default=0)
            self._replies.clear()
            self._faults.clear()
            self._log.clear()
            self._retired = None
            self._minute.clear()
            self._day.clear()
            self._minute_tokens.clear()
            self._served.clear()

    # -- inspection --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent request, or None."""
        with self._lock:
            return self._log[-1] if self._log else None

    @property
    def in_flight(self) -> int:
        """Admitted inference requests whose answer is not complete yet (streams included).

        Useful to check that a client closed its streams: ``assert fake.in_flight == 0``.
        """
        with self._lock:
            return sum(self._in_flight.values())

    @property
    def max_in_flight(self) -> int:
        """The most inference requests one token had in flight at once, since creation or
        :meth:`reset` (a stream counts until its last event).

        For benchmarks of a client's parallelism: ``assert fake.max_in_flight <= 4``.
        """
        with self._lock:
            return self._max_in_flight

    @property
    def catalog(self) -> list[dict[str, Any]]:
        """A copy of the catalog served at ``GET /catalog/models``."""
        return json.loads(_dumps(self._catalog))

    def saw_token(self, token: str) -> bool:
        """Whether any request carried this credential (compared by SHA-256; none is kept)."""
        digest = _sha256(token)
        with self._lock:
            return any(r.token_sha256 == digest for r in self._log)

    # -- serving (called from handler threads) -----------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _serve(self, handler: _Handler, received_at: float, incoming: _Incoming) -> None:
        record = RecordedRequest(
            method=incoming.method,
            path=incoming.path,
            query=incoming.query,
            headers=incoming.headers,
            body=incoming.body,
            org=incoming.org,
            route=incoming.route,
            status=0,
            received_at=received_at,
            token_sha256=incoming.token_sha256,
        )
        with self._lock:
            self._log.append(record)
        update = self._log_updater(record)
        exchange = _Exchange(
            self,
            handler,
            on_status=lambda status: update(status=status),
            on_finish=lambda at: update(finished_at=at),
            chunk_times=record.chunk_times,
        )
        try:
            self._answer(exchange, incoming)
        except OSError:
            handler.close_connection = True  # the client went away
        except Exception as exc:  # a bug in the double: say so rather than hang the client
            if not exchange.answered:
                exchange.send(_error(500, "FakeInternalError", f"sigla.testing bug: {exc!r}"))
            else:
                handler.close_connection = True

    def _log_updater(self, record: RecordedRequest) -> Callable[..., None]:
        """A callback that swaps ``record``'s log entry for a copy with the given fields
        changed (``status``, ``finished_at``), each time it is called."""
        current = record

        def update(**changes: Any) -> None:
            nonlocal current
            current = self._replace_entry(current, changes)

        return update

    def _replace_entry(self, record: RecordedRequest, changes: dict[str, Any]) -> RecordedRequest:
        updated = dataclasses.replace(record, **changes)
        with self._lock:
            for i in range(len(self._log) - 1, -1, -1):
                if self._log[i] is record:
                    self._log[i] = updated
                    break
        return updated

    def _answer(self, ex: _Exchange, inc: _Incoming) -> None:
        if inc.kind is None:
            return ex.send(_error(404, "NotFound", "Not Found", details=False))
        if inc.method != _METHODS[inc.kind]:
            answer = _error(405, "MethodNotAllowed", "Method Not Allowed", details=False)
            answer.headers["Allow"] = _METHODS[inc.kind]
            return ex.send(answer)
        with self._lock:
            retired = self._retired
        if retired and inc.route == "github":
            return ex.send(_retirement(retired))
        if inc.kind == "catalog":
            return ex.send(_json_answer(200, self._catalog))
        if inc.kind == "model_list":  # OpenAI/Mistral style: GET /v1/models
            return ex.send(_json_answer(200, _model_list(self._catalog)))

        body = inc.body if isinstance(inc.body, dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        fault = self._pop_fault()
        if fault is not None and fault.name == "timeout":
            self._sleep(float(fault.params.get("seconds", 30.0)))
            fault = None
        if fault is not None and fault.name not in _MODIFIERS:
            return ex.send(_fault_answer(fault, model, inc.route))
        refusal = self._validate(inc, body, model)
        if refusal is not None:
            return ex.send(refusal)
        assert model is not None
        token = inc.token_sha256 or ""
        refusal = self._admit(token, model, _requested_tokens(body, inc.kind))
        if refusal is not None:
            return ex.send(refusal)
        ex.on_last_bytes = lambda: self._release(token)
        try:
            if inc.kind == "embeddings":
                return self._answer_embeddings(ex, body, model, fault)
            self._answer_chat(ex, inc, body, model, fault)
        finally:
            ex.end_flight()

    def _validate(self, inc: _Incoming, body: dict[str, Any], model: str | None) -> _Answer | None:
        """Checks 3 and 4: api-version, credentials, body and model id."""
        if inc.route == "azure" and not inc.query.get("api-version"):
            return _error(
                400, "BadRequest", "api-version query parameter is required", details=False
            )
        if inc.token_sha256 is None or (
            self._token_hashes is not None and inc.token_sha256 not in self._token_hashes
        ):
            return _azure_unauthorized() if inc.route == "azure" else _bad_credentials()
        if not inc.body_ok or not isinstance(inc.body, dict):
            return _error(400, "BadRequest", "The request body must be a JSON object.")
        if inc.route == "github":
            if model is None or not _GITHUB_MODEL_ID.fullmatch(model):
                return _text_answer(400, _MODEL_FORMAT_BODY)
            if model.lower() not in self._model_ids:
                return _error(404, "unknown_model", f"Unknown model: {model}")
        elif not model:
            return _error(400, "BadRequest", "'model' is required.")
        if inc.kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _error(400, "BadRequest", "'messages' must be a non-empty array.")
        elif not isinstance(body.get("input"), (str, list)):
            return _error(400, "BadRequest", "'input' must be a string or an array of strings.")
        return None

    # -- limits ------------------------------------------------------------------------

    def _admit(self, token: str, model: str, cost: int) -> _Answer | None:
        """Check 5: take an in-flight slot and a place in the rpm/daily/tpm windows, or refuse.

        ``cost`` is the request's estimated tokens, booked against ``tpm``.
        """
        key = (token, model.lower())
        with self._lock:
            now = self._clock()
            if self.concurrency is not None and self._in_flight.get(token, 0) >= self.concurrency:
                return _rate_limited(self.concurrency, 0, "UserConcurrentRequests", 0)
            windows = (
                (self.rpm, 60, "UserByModelByMinute", self._minute),
                (self.daily, _DAY, "UserByModelByDay", self._day),
            )
            for limit, span, kind, table in windows:
                if limit is None:
                    continue
                times = table.setdefault(key, deque())
                while times and times[0] <= now - span:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(1, math.ceil(times[0] + span - now))
                    return _rate_limited(limit, span, kind, wait)
            tpm = self.tpm
            if tpm is not None:
                booked = self._minute_tokens.setdefault(key, deque())
                tokens_wait = _tokens_wait(booked, cost, tpm, now)
                if tokens_wait is not None:
                    return _rate_limited(tpm, 60, "UserByModelByMinuteTokens", tokens_wait)
                booked.append((now, cost))
            for limit, _span, _kind, table in windows:
                if limit is not None:
                    table[key].append(now)
            held = self._in_flight[token] = self._in_flight.get(token, 0) + 1
            self._max_in_flight = max(self._max_in_flight, held)
        return None

    def _release(self, token: str) -> None:
        with self._lock:
            self._in_flight[token] -= 1

    def _pop_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.popleft()
            return fault

    def _ratelimit_headers(self, model: str, tokens: int) -> dict[str, str]:
        # Informational numbers, like the real service's: not the binding free-tier limits.
        with self._lock:
            served = self._served.setdefault(model.lower(), [0, 0])
            served[0] += 1
            served[1] += tokens
            requests, used = served
        return {
            "x-ratelimit-limit-requests": "1000",
            "x-ratelimit-remaining-requests": str(max(0, 1000 - requests)),
            "x-ratelimit-reset-requests": "60",
            "x-ratelimit-renewalperiod-requests": "60",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": str(max(0, 200000 - used)),
            "x-ratelimit-reset-tokens": "60",
            "x-ratelimit-renewalperiod-tokens": "60",
        }

    # -- successful answers ------------------------------------------------------------

    def _answer_embeddings(
        self, ex: _Exchange, body: dict[str, Any], model: str, fault: _Fault | None
    ) -> None:
        if fault is not None and fault.name == "stream_cut":
            return ex.send(_Answer(0, disconnect=True))
        if fault is not None and fault.name == "stream_error_event":
            return ex.send(_server_error(500, fault.params.get("message")))
        payload = _embeddings_body(body, model)
        tokens = json.loads(payload)["usage"]["total_tokens"]
        headers = {"Content-Type": "application/json", **self._ratelimit_headers(model, tokens)}
        ex.send(_Answer(200, payload, headers))

    def _answer_chat(
        self, ex: _Exchange, inc: _Incoming, body: dict[str, Any], model: str, fault: _Fault | None
    ) -> None:
        prompt_texts = _message_texts(body)
        prompt_tokens = _estimate_tokens(prompt_texts)
        if self.max_input_tokens is not None and prompt_tokens > self.max_input_tokens:
            return ex.send(_too_large(model, self.max_input_tokens))
        fault_name, params = (fault.name, fault.params) if fault else (None, {})
        out = self._outcome(body, model, max(1, prompt_tokens), fault)
        headers = self._ratelimit_headers(model, out.usage.get("total_tokens", 0) or 0)
        if body.get("stream") is not True:
            if fault_name in ("stream_cut", "stream_stall"):
                return ex.send(_Answer(0, disconnect=True))
            if fault_name == "stream_error_event":
                return ex.send(_server_error(500, params.get("message")))
            if fault_name == "stream_no_finish":
                out.finish_reason = None
            return ex.send(
                _Answer(200, _completion_body(out), {"Content-Type": "application/json", **headers})
            )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = _stream_events(
            out, style=self.stream_style, include_usage=include_usage, fault=fault
        )
        ex.stream(events, headers)

    def _outcome(
        self, body: dict[str, Any], model: str, prompt_tokens: int, fault: _Fault | None
    ) -> _Outcome:
        """Check 7: what to say — a content-filter fault, a scripted reply, or the default."""
        served, mistral = _served_name(model)
        fingerprint = _fingerprint(model, mistral)
        flagged = None
        tool_calls: list[dict[str, Any]] | None = None
        usage: dict[str, Any] | None = None
        if fault is not None and fault.name == "content_filter":
            text: str | None = fault.params.get("text")
            pieces = _split_pieces(text or "")
            finish: str | None = "content_filter"
            flagged = str(fault.params.get("category", "violence"))
        else:
            with self._lock:
                scripted = self._replies.popleft() if self._replies else None
            if scripted is None:
                text, finish = _default_reply(body, self._reply_mode)
                pieces = _split_pieces(text)
            else:
                text, finish, usage = scripted.text, scripted.finish_reason, scripted.usage
                if text is None and scripted.chunks is not None:
                    text = "".join(scripted.chunks)
                pieces = (
                    list(scripted.chunks)
                    if scripted.chunks is not None
                    else _split_pieces(text or "")
                )
                served = scripted.model or served
                tool_calls = [dict(c) for c in scripted.tool_calls] if scripted.tool_calls else None
        if usage is None:
            usage = _usage(prompt_tokens, _estimate_tokens([text or ""]), mistral=mistral)
        return _Outcome(
            text, pieces, finish, usage, served, mistral, fingerprint, tool_calls, flagged
        )
