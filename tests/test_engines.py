"""sigla on data engines: the per-record API (chat_record/chat_batch, summarize_record/
summarize_batch) in the three batch shapes engines hand over, then a real Dask cluster of
three worker processes on loopback sharing one limiter and one cache (SQLite and Redis),
an engine's retry served from the cache, and a credential that never travels in a pickle.

The Dask tests run in the normal suite (marker ``dask``); without dask installed they
fail, saying what to install, as the Redis tests do without redis-server.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from conftest import TOKEN

from sigla.capsules import summarize_batch, summarize_record
from sigla.errors import (
    AuthenticationError,
    BatchError,
    ContentFilteredError,
    InvalidRequestError,
    LLMError,
    RateLimitError,
)
from sigla.llm import GitHubLLM, RateLimits
from sigla.testing import FakeGitHubModels


def need(module: str) -> Any:
    """Import ``module`` or fail (never skip) saying how to get it."""
    try:
        return __import__(module)
    except ImportError:
        pytest.fail(
            f"{module} is not installed, and the engine tests need it: "
            'pip install -e ".[dev]" (it holds the dask extra and pandas).',
            pytrace=False,
        )


ANSWERED = {"answer", "error", "error_type"}


# ---------------------------------------------------------------- one record


def test_chat_record_adds_the_answer_to_the_records_fields(llm, fake):
    out = llm.chat_record({"id": 7, "prompt": "hello"})
    assert out == {"id": 7, "prompt": "hello", "answer": "Echo: hello", "error": None,
                   "error_type": None}  # fmt: skip
    assert llm.chat_record({"q": "hi"}, field="q", system="Be terse.")["answer"] == "Echo: hi"
    assert fake.requests[-1].body["messages"][0] == {"role": "system", "content": "Be terse."}


def test_chat_record_takes_a_list_of_messages(llm):
    messages = [{"role": "user", "content": "from messages"}]
    assert llm.chat_record({"prompt": messages})["answer"] == "Echo: from messages"


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ("just a string", "not 'just a string'"),
        ({"id": 1}, "no 'prompt' field"),
        ({"prompt": None}, "empty"),
        ({"prompt": float("nan")}, "empty"),
        ({"prompt": 42}, "42"),
        ({"prompt": "   "}, "blank"),
        ({"prompt": []}, "[]"),
    ],
)
def test_a_bad_record_is_an_error_value_and_sends_nothing(llm, fake, record, says):
    out = llm.chat_record(record)
    assert out["answer"] is None and out["error_type"] == "InvalidRequestError"
    assert says in out["error"]
    if isinstance(record, Mapping):
        assert {k: out[k] for k in record} == record
    assert fake.requests == []


def test_a_request_that_fails_on_its_own_is_an_error_value(llm, fake):
    fake.fail("content_filter")
    out = llm.chat_record({"prompt": "something filtered"})
    assert out["answer"] is None and out["error_type"] == "ContentFilteredError"
    assert out["error"]


def test_an_error_that_would_befall_every_record_raises(llm, fake):
    fake.fail("unauthorized")
    with pytest.raises(AuthenticationError):
        llm.chat_record({"prompt": "hello"})


class BrokenRecord(Mapping[str, Any]):
    """A mapping with a bug: reading it raises something that is not sigla's."""

    def __getitem__(self, key: str) -> Any:
        raise ZeroDivisionError("a bug in the caller's record")

    def __iter__(self) -> Iterator[str]:
        return iter(["prompt"])

    def __len__(self) -> int:
        return 1


def test_only_sigla_errors_become_values(llm):
    with pytest.raises(ZeroDivisionError):
        llm.chat_record(BrokenRecord())
    with pytest.raises(ZeroDivisionError):
        llm.chat_batch([{"prompt": "fine"}, BrokenRecord()])


# ---------------------------------------------------------------- batches, three shapes

# Sent one at a time, so the scripted fault meets the first prompt that is sent: "first".
RECORDS: list[dict[str, Any]] = [
    {"id": 0, "prompt": "first"},
    {"id": 1, "prompt": None},
    {"id": 2, "prompt": 42},
    {"id": 3, "prompt": "second"},
    {"id": 4, "prompt": " "},
    {"id": 5, "prompt": "third"},
]
EXPECTED = [
    (None, "ContentFilteredError"),
    (None, "InvalidRequestError"),
    (None, "InvalidRequestError"),
    ("Echo: second", None),
    (None, "InvalidRequestError"),
    ("Echo: third", None),
]


def _rows(out: Any, shape: str) -> list[dict[str, Any]]:
    if shape == "dataframe":
        return out.to_dict("records")
    if shape in ("columns", "arrays"):
        return [{k: out[k][i] for k in out} for i in range(len(out["id"]))]
    return out


def _batch(shape: str, records: list[dict[str, Any]]) -> Any:
    if shape == "dataframe":
        return need("pandas").DataFrame(records)
    if shape in ("columns", "arrays"):
        columns = {k: [r[k] for r in records] for k in records[0]}
        if shape == "arrays":
            numpy = need("numpy")
            return {k: numpy.array(v, dtype=object) for k, v in columns.items()}
        return columns
    return records


SHAPES = ["records", "columns", "arrays", "dataframe"]


@pytest.mark.parametrize("shape", SHAPES)
def test_chat_batch_answers_in_the_shape_given_with_bad_records_as_errors(llm, fake, shape):
    fake.fail("content_filter")
    batch = _batch(shape, RECORDS)
    out = llm.chat_batch(batch, concurrency=1)
    assert type(out) is type(batch)
    rows = _rows(out, shape)
    got = [(row["answer"], row["error_type"]) for row in rows]
    assert got == EXPECTED
    assert [row["id"] for row in rows] == [0, 1, 2, 3, 4, 5]  # order and fields kept
    assert all(isinstance(row["error"], str) for row in rows if row["error_type"])
    assert [r.body["messages"][-1]["content"] for r in fake.requests] == [
        "first",
        "second",
        "third",
    ]
    if shape == "arrays":
        assert out["answer"].dtype == object and out["answer"][3] == "Echo: second"
    if shape == "dataframe":
        assert list(out.columns) == ["id", "prompt", *sorted(ANSWERED)]
        assert out["error"][3] is None  # None, not NaN: an engine writes it as null
        assert "answer" not in batch.columns, "the input is not changed"


def test_chat_batch_of_a_missing_column_answers_every_row_with_an_error(llm, fake):
    pandas = need("pandas")
    out = llm.chat_batch(pandas.DataFrame({"id": [1, 2]}), field="question")
    assert list(out["error_type"]) == ["InvalidRequestError"] * 2
    assert "no 'question' field" in out["error"][0]
    assert fake.requests == []


def test_an_empty_batch_keeps_its_shape(llm, fake):
    assert llm.chat_batch([]) == []
    assert llm.chat_batch({"prompt": []}) == {"prompt": [], "answer": [], "error": [],
                                              "error_type": []}  # fmt: skip
    assert fake.requests == []


def test_a_batch_is_a_frame_columns_or_records(llm):
    with pytest.raises(InvalidRequestError, match="equal length"):
        llm.chat_batch({"prompt": ["a", "b"], "id": [1]})
    with pytest.raises(InvalidRequestError, match="DataFrame"):
        llm.chat_batch("a prompt")


def test_a_batch_stopped_by_a_refused_credential_raises_and_travels(llm, fake):
    fake.fail("unauthorized", times=None)
    with pytest.raises(BatchError) as caught:
        llm.chat_batch([{"prompt": "a"}, {"prompt": "b"}, {"prompt": None}])
    assert isinstance(caught.value.reason, AuthenticationError)
    copy = pickle.loads(pickle.dumps(caught.value))  # an engine ships it to the driver
    assert isinstance(copy.reason, AuthenticationError)
    assert copy.reason.status_code == 401 and copy.message == caught.value.message


def test_every_error_survives_a_pickle():
    import sigla.errors as errors

    sample = RateLimitError("slow down", status_code=429, retry_after=3.0, limit_type="x")
    copy = pickle.loads(pickle.dumps(sample))
    assert (type(copy), str(copy), copy.retry_after) == (RateLimitError, "slow down", 3.0)
    for name in errors.__all__:
        cls = getattr(errors, name)
        error = cls.__new__(cls, "m")
        LLMError.__init__(error, "m")
        assert type(pickle.loads(pickle.dumps(error))) is cls


# ---------------------------------------------------------------- capsules, one per record

CAPSULE = {
    "id": "ops-12",
    "title": "Disk",
    "text": "The disk filled up at night. Logs grew fast.\n\nWe added an alert at 80%.",
}


@pytest.fixture
def extractive(fake: FakeGitHubModels) -> FakeGitHubModels:
    fake.reply_mode = "extractive"
    return fake


def test_summarize_record_summarises_one_capsule(llm, extractive):
    out = summarize_record(CAPSULE, llm, max_input_tokens=2_000)
    assert out["error"] is None and out["error_type"] is None
    assert "[ops-12]" in out["summary"] and "alert" in out["summary"]
    assert {k: out[k] for k in CAPSULE} == CAPSULE
    assert len(extractive.requests) == 1


def test_summarize_record_merges_a_records_group_of_capsules(llm, extractive):
    group = {"topic": "ops", "capsules": [CAPSULE, {"id": "ops-13", "text": "Backups ran."}]}
    out = summarize_record(group, llm, field="capsules", max_input_tokens=2_000)
    assert "[ops-12]" in out["summary"] and "[ops-13]" in out["summary"]
    assert out["topic"] == "ops"


@pytest.mark.parametrize(
    ("record", "field", "says"),
    [
        ({"id": "x", "title": "no text"}, None, "neither 'text' nor 'content'"),
        ("a capsule as a str", None, "mapping"),
        ({"capsules": "not a list"}, "capsules", "expected a list"),
        ({"capsules": []}, "capsules", "empty"),
    ],
)
def test_a_bad_capsule_record_is_an_error_value(llm, extractive, record, field, says):
    out = summarize_record(record, llm, field=field, max_input_tokens=2_000)
    assert out["summary"] is None and out["error_type"] == "InvalidRequestError"
    assert says in out["error"]
    assert extractive.requests == []


def test_a_filtered_summary_is_the_records_own_error(llm, extractive):
    extractive.fail("content_filter")
    out = summarize_record(CAPSULE, llm, max_input_tokens=2_000)
    assert out["error_type"] == ContentFilteredError.__name__ and out["summary"] is None


@pytest.mark.parametrize("shape", ["records", "dataframe"])
def test_summarize_batch_keeps_order_and_shape(llm, extractive, shape):
    capsules = [
        {"id": f"c-{i}", "title": None, "text": f"Fact number {i} holds. More detail."}
        for i in range(5)
    ]
    capsules[2] = {"id": "c-2", "title": None, "text": None}
    batch = _batch(shape, capsules)
    out = summarize_batch(batch, llm, concurrency=3, max_input_tokens=2_000)
    rows = _rows(out, shape)
    assert [r["id"] for r in rows] == [f"c-{i}" for i in range(5)]
    assert [r["error_type"] for r in rows] == [None, None, "InvalidRequestError", None, None]
    for i in (0, 1, 3, 4):
        assert rows[i]["summary"].startswith(f"[c-{i}] Fact number {i} holds.")
    assert len(extractive.requests) == 4


def test_importing_sigla_llm_imports_no_engine_library():
    code = (
        "import sys, sigla.llm, sigla.capsules; print(sorted(m for m in "
        "('dask', 'distributed', 'pandas', 'numpy', 'ray', 'pyspark') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- a real Dask cluster

WORKER_TOKEN = "ghp_WORKERtoken0123456789secret"  # in the workers' environment only
PARENT_TOKEN = "ghp_PARENTtoken0123456789secret"  # in the test process's, later


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """Three worker processes (two threads each) on 127.0.0.1, and a client of them.

    The workers start with GITHUB_TOKEN=WORKER_TOKEN in their environment (inherited at
    start), which only the pickling test relies on; the others pass token=.
    """
    need("dask")
    distributed = need("distributed")
    # The workers cannot import this test module: its functions travel by value.
    need("cloudpickle").register_pickle_by_value(sys.modules[__name__])
    saved = os.environ.get("GITHUB_TOKEN")
    os.environ["GITHUB_TOKEN"] = WORKER_TOKEN
    try:
        cluster = distributed.LocalCluster(
            n_workers=3,
            processes=True,
            threads_per_worker=2,
            host="127.0.0.1",
            dashboard_address=None,
        )
    finally:
        if saved is None:
            del os.environ["GITHUB_TOKEN"]
        else:
            os.environ["GITHUB_TOKEN"] = saved
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def service() -> Iterator[FakeGitHubModels]:
    """The double on the real clock, slow enough (20 ms) that requests overlap."""
    with FakeGitHubModels(reply_mode="extractive", latency=0.02) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A shared store URL, once per backend: a new SQLite file, or an empty Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/limits.db"  # tmp_path is absolute: four slashes
    return str(request.getfixturevalue("redis_url"))


def _prompts(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "prompt": f"Record {i} says hello. Nothing more."} for i in range(n)]


def _sent(service: FakeGitHubModels) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in service.requests]


def test_spawned_processes_share_one_limiter_and_one_cache(service, store, tmp_path):
    import multiprocessing

    cache = f"sqlite:///{tmp_path}/answers.db" if store.startswith("sqlite") else store
    llm = GitHubLLM(
        token=TOKEN,
        endpoint=service.url,
        limits=RateLimits(concurrent_requests=2),
        limiter=store,
        cache=cache,
    )
    records = _prompts(24)
    parts = [records[i : i + 8] for i in range(0, 24, 8)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:  # the client travels pickled
        first = [row for part in pool.map(llm.chat_batch, parts, chunksize=1) for row in part]
        again = [row for part in pool.map(llm.chat_batch, parts, chunksize=1) for row in part]
    assert [r["answer"] for r in first] == [f"Record {i} says hello." for i in range(24)]
    assert again == first
    assert sorted(_sent(service)) == sorted(r["prompt"] for r in records), "each paid once"
    assert service.max_in_flight <= 2


@pytest.mark.dask
def test_a_dask_cluster_shares_one_limiter_and_answers_each_record_once(
    dask_client, service, store
):
    bag = need("dask.bag").bag
    llm = GitHubLLM(
        token=TOKEN,
        endpoint=service.url,
        limits=RateLimits(concurrent_requests=2),
        limiter=store,
    )
    records = _prompts(60)
    rows = bag.from_sequence(records, npartitions=6).map_partitions(llm.chat_batch).compute()
    assert [r["id"] for r in rows] == list(range(60))
    assert all(r["answer"] == f"Record {r['id']} says hello." for r in rows), rows[:2]
    assert sorted(_sent(service)) == sorted(r["prompt"] for r in records), "each once"
    assert service.max_in_flight <= 2
    assert service.max_in_flight == 2, "three workers of two threads did run in parallel"


@pytest.mark.dask
def test_capsules_summarised_on_dask_from_dataframe_partitions(dask_client, service, tmp_path):
    pandas = need("pandas")
    llm = GitHubLLM(
        token=TOKEN,
        endpoint=service.url,
        limits=RateLimits(concurrent_requests=2),
        limiter=f"sqlite:///{tmp_path}/limits.db",
    )
    ids = [f"c-{i}" for i in range(12)]
    frame = pandas.DataFrame({"id": ids, "text": [f"Fact {i} holds. Detail." for i in range(12)]})
    parts = [frame.iloc[i : i + 4] for i in range(0, 12, 4)]  # what map_partitions hands over
    futures = dask_client.map(summarize_batch, parts, llm=llm, max_input_tokens=2_000)
    out = pandas.concat(dask_client.gather(futures))
    assert list(out["id"]) == ids
    assert list(out["summary"]) == [f"[c-{i}] Fact {i} holds." for i in range(12)]
    assert len(service.requests) == 12 and service.max_in_flight <= 2


def _answer_then_lose_the_worker(llm: GitHubLLM, records: list[dict[str, Any]], marker: str):
    """An engine task whose worker dies after the answers were paid for, the first time."""
    rows = llm.chat_batch(records)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker process is lost: Dask runs the task again elsewhere
    return rows


@pytest.mark.dask
def test_a_task_retried_after_a_lost_worker_is_served_from_the_shared_cache(
    dask_client, service, tmp_path
):
    llm = GitHubLLM(
        token=TOKEN,
        endpoint=service.url,
        cache=f"sqlite:///{tmp_path}/answers.db",
        limiter=f"sqlite:///{tmp_path}/limits.db",
    )
    records = _prompts(10)
    marker = str(tmp_path / "lost-once")
    future = dask_client.submit(_answer_then_lose_the_worker, llm, records, marker, pure=False)
    rows = future.result(timeout=60)
    assert os.path.exists(marker), "the first run did die"
    assert [r["answer"] for r in rows] == [f"Record {i} says hello." for i in range(10)]
    assert sorted(_sent(service)) == sorted(r["prompt"] for r in records), "paid once"
    again = dask_client.submit(llm.chat_batch, records, pure=False).result(timeout=60)
    assert again == rows and len(service.requests) == 10


def _token_seen(llm: GitHubLLM) -> str:
    token = llm.settings.token
    return "" if token is None else token.reveal()


@pytest.mark.dask
def test_a_credential_from_the_environment_is_resolved_again_on_the_worker(
    dask_client, service, monkeypatch
):
    monkeypatch.setenv("GITHUB_TOKEN", PARENT_TOKEN)
    llm = GitHubLLM(endpoint=service.url)
    assert PARENT_TOKEN.encode() not in pickle.dumps(llm)
    out = dask_client.submit(GitHubLLM.chat_record, llm, {"prompt": "Hi there."}).result(60)
    assert out["answer"] == "Hi there."
    assert service.saw_token(WORKER_TOKEN) and not service.saw_token(PARENT_TOKEN)
    passed = GitHubLLM(endpoint=service.url, token=TOKEN)  # token= travels with the client
    assert dask_client.submit(_token_seen, passed).result(60) == TOKEN
