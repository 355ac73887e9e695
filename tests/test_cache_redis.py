"""The response cache in Redis, against a real redis-server: a client end to end, the
setting from SIGLA_CACHE_URL, a store that goes away mid-run, a password that never shows,
and no credential in anything written. What every backend does is in tests/test_cache.py."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest
import redis
from click.testing import CliRunner
from conftest import TOKEN, run_chat
from test_cache import ANSWER, key_of, make_settings, process_env

from sigla._cache import masked_url, open_cache
from sigla._cache_redis import PREFIX, RedisCache
from sigla.cli import main
from sigla.errors import BatchError, ConfigurationError, NotAttemptedError

PASSWORD = "hunter2-redis-Pa55word"


def invoke(args, env=None):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def everything_in(url: str) -> bytes:
    """Every key of every database of the server and every value they hold, as bytes."""
    chunks: list[bytes] = []
    with redis.Redis.from_url(url) as client:
        databases = int(client.config_get("databases")["databases"])
        for db in range(databases):
            with redis.Redis.from_url(url, db=db) as one:
                for name in one.scan_iter(count=1000):
                    chunks.append(name)
                    kind = one.type(name)
                    if kind == b"hash":
                        for field, value in one.hgetall(name).items():
                            chunks += [field, value]
                    elif kind == b"string":
                        chunks.append(one.get(name) or b"")
                    else:  # sigla writes hashes only: anything else would be a new leak path
                        chunks.append(one.dump(name) or b"")
    return b"\n".join(chunks)


@pytest.fixture
def secured(start_redis):
    """A redis-server of this test's own that asks for PASSWORD."""
    return start_redis(password=PASSWORD)


# ---------------------------------------------------------------- end to end


def test_a_second_identical_call_sends_no_request(make_llm, fake, redis_url, mode):
    llm = make_llm(cache=redis_url)
    assert isinstance(llm.cache, RedisCache)
    first = run_chat(llm, mode, "What is the capital of France?")
    again = run_chat(llm, mode, "What is the capital of France?")
    assert again == first
    assert len(fake.requests) == 1
    assert llm.usage.cached == 1


def test_sigla_cache_url_names_a_redis_cache(make_llm, fake, redis_url, monkeypatch):
    monkeypatch.setenv("SIGLA_CACHE_URL", redis_url)
    first = make_llm()
    assert isinstance(first.cache, RedisCache)
    first.chat("hi")
    second = make_llm()  # another client, its own connections: served by the shared store
    assert second.chat("hi") == "Echo: hi"
    assert len(fake.requests) == 1
    copy = pickle.loads(pickle.dumps(second))  # a worker process's copy shares it too
    assert copy.chat("hi") == "Echo: hi" and len(fake.requests) == 1


def test_clear_leaves_the_other_keys_of_the_database_alone(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        client.set("someone-else:key", "theirs")
        with open_cache(redis_url) as cache:
            cache.put("k", ANSWER)
            assert cache.clear() == 1
        assert client.get("someone-else:key") == b"theirs"
        assert client.keys(PREFIX + "*") == []


def test_entries_are_hashes_under_the_versioned_prefix(redis_url):
    with open_cache(redis_url) as cache:
        cache.put("k", ANSWER)
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("*") == [b"sigla:cache:v1:k"]
        stored = client.hgetall(b"sigla:cache:v1:k")
    assert set(stored) == {b"v", b"c"}
    assert b'"text":"Paris."' in stored[b"v"]


# ---------------------------------------------------------------- a store that cannot serve


def test_a_store_gone_mid_run_fails_the_call_naming_it_and_sends_nothing(
    make_llm, fake, secured, mode
):
    llm = make_llm(cache=secured.url)
    run_chat(llm, mode, "first")
    secured.stop()
    for prompt in ("first", "second"):  # a stored answer and a new one: neither falls back
        with pytest.raises(ConfigurationError) as caught:
            run_chat(llm, mode, prompt)
        message = str(caught.value)
        assert f"redis://:***@127.0.0.1:{secured.port}/0" in message
        assert "cannot be reached" in message and "start it" in message
        assert PASSWORD not in message and PASSWORD not in repr(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # from None
    assert len(fake.requests) == 1


def test_a_batch_stops_at_once_when_the_store_is_gone(make_llm, fake, secured):
    llm = make_llm(cache=secured.url)
    secured.stop()
    with pytest.raises(BatchError) as caught:
        llm.map([f"item {i}" for i in range(20)], concurrency=2)
    error = caught.value
    assert isinstance(error.reason, ConfigurationError)
    assert sum(isinstance(r, NotAttemptedError) for r in error.results) >= 18
    assert fake.requests == []
    assert PASSWORD not in str(error)


def test_an_answer_received_as_the_store_goes_reaches_the_caller(make_llm, fake, secured):
    """Paid for, so kept: a warning says it was not stored; the next lookup raises."""
    llm = make_llm(cache=secured.url)
    fake.latency = 1.0

    def stop_when_sent() -> None:
        deadline = time.monotonic() + 10
        while fake.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        secured.stop()

    stopper = threading.Thread(target=stop_when_sent)
    stopper.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert llm.chat("hi") == "Echo: hi"
    stopper.join()
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(said) == 1 and "not stored" in said[0]
    assert f"redis://:***@127.0.0.1:{secured.port}/0" in said[0] and PASSWORD not in said[0]
    with pytest.raises(ConfigurationError, match="cannot be reached"):
        llm.chat("hi")


def test_a_store_that_stops_answering_times_out_naming_it(start_redis):
    server = start_redis()
    cache = RedisCache(server.url, 0.3)
    cache.put("k", ANSWER)
    pid = server._process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as caught:
            cache.get("k")
        assert time.monotonic() - started < 3
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "did not answer within 0.3 s" in str(caught.value)
    assert server.url in str(caught.value)
    assert cache.get("k") == ANSWER  # back: the cache serves again
    cache.close()


def test_opening_a_store_where_nothing_listens_names_it_and_the_setting(start_redis):
    server = start_redis()
    url = server.url
    server.stop()
    with pytest.raises(ConfigurationError) as caught:
        open_cache(url, argument="cache=")
    message = str(caught.value)
    assert url in message and "cannot be reached" in message and "cache=" in message


# ---------------------------------------------------------------- credentials


def test_the_password_in_the_url_opens_a_protected_store(secured):
    with open_cache(secured.url) as cache:
        assert cache.put("k", ANSWER)
        assert cache.get("k") == ANSWER
        assert repr(cache) == f"RedisCache('redis://:***@127.0.0.1:{secured.port}/0')"
        assert PASSWORD not in repr(cache) and PASSWORD not in str(cache.info())
        with pickle.loads(pickle.dumps(cache)) as copy:  # the copy reconnects: URL travels
            assert copy.get("k") == ANSWER


@pytest.mark.parametrize("given", ["wrong-password", None])
def test_a_wrong_or_missing_password_is_refused_without_showing_it(secured, given):
    auth = f":{given}@" if given else ""
    url = f"redis://{auth}127.0.0.1:{secured.port}/0"
    with pytest.raises(ConfigurationError) as caught:
        open_cache(url)
    message = str(caught.value)
    assert "refused sigla's credentials" in message and "password in the URL" in message
    assert "wrong-password" not in message and PASSWORD not in message


def test_masked_url_hides_every_form_of_password():
    assert masked_url("redis://:s3cret@h:6379/1") == "redis://:***@h:6379/1"
    assert masked_url("rediss://alice:s3cret@h:6380/2") == "rediss://alice:***@h:6380/2"
    assert masked_url("redis://s3cret@h/0") == "redis://***@h/0"
    assert masked_url("redis://h:6379/0?password=s3cret&x=1") == "redis://h:6379/0?password=***&x=1"
    assert masked_url("redis://h:6379/0") == "redis://h:6379/0"
    assert masked_url("/tmp/a@b.sqlite") == "/tmp/a@b.sqlite"


def test_no_credential_in_any_key_or_value_written(make_llm, secured):
    llm = make_llm(cache=secured.url)
    for prompt in ("one", "two", "three"):
        llm.chat(prompt)
    settings = make_settings(
        provider="openai",
        model="m",
        endpoint="https://user:endpointsecret42@llm.example/v1?key=querysecret42",
    )
    llm.cache.put(key_of(settings), ANSWER)
    written = everything_in(secured.url)
    assert b"Echo: two" in written and b"Paris." in written  # the scan reads what was written
    for secret in (TOKEN, PASSWORD, "endpointsecret42", "querysecret42"):
        assert secret.encode() not in written


def test_cli_info_clear_and_doctor_never_show_the_password(secured, monkeypatch):
    with open_cache(secured.url) as cache:
        for i in range(3):
            cache.put(f"k{i}", ANSWER)
    shown = f"redis://:***@127.0.0.1:{secured.port}/0"
    info = invoke(["cache", "info", "--cache", secured.url])
    assert info.exit_code == 0, info.output
    assert f"cache         {shown}   (from --cache)" in info.stdout
    assert "entries       3\n" in info.stdout and "oldest        20" in info.stdout
    env = {"GITHUB_TOKEN": TOKEN, "SIGLA_CACHE_URL": secured.url}
    doctor = invoke(["doctor", "--no-request"], env=env)
    assert doctor.exit_code == 0, doctor.output
    assert f"cache         {shown}   (from SIGLA_CACHE_URL)" in doctor.stdout
    assert "cache check   OK" in doctor.stdout
    cleared = invoke(["cache", "clear", "--yes"], env=env)
    assert cleared.stdout == f"Removed 3 entries from {shown}.\n"
    secured.stop()
    down = invoke(["doctor", "--no-request", "--cache", secured.url], env={"GITHUB_TOKEN": TOKEN})
    assert down.exit_code == 2
    assert f"cache         {shown}   (from --cache)" in down.stdout
    assert "cache check   FAILED: The Redis cache at" in down.stdout
    failed = invoke(["cache", "info", "--cache", secured.url])
    assert failed.exit_code == 2 and "cannot be reached" in failed.stderr
    for result in (info, doctor, cleared, down, failed):
        assert PASSWORD not in result.output


def test_doctor_says_when_no_cache_is_set():
    result = invoke(["doctor", "--no-request"], env={"GITHUB_TOKEN": TOKEN})
    assert result.exit_code == 0
    assert "cache         none" in result.stdout


# ---------------------------------------------------------------- the optional package


def test_without_the_redis_package_the_error_names_what_to_install():
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from sigla._cache import open_cache\n"
        "from sigla.errors import MissingDependencyError\n"
        "try:\n    open_cache('redis://127.0.0.1:9/0')\n"
        "except MissingDependencyError as e:\n    print(isinstance(e, ImportError), e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=process_env()
    )
    out = done.stdout.strip()
    assert out.startswith("True "), done.stderr
    assert 'pip install "redis>=5"' in out and 'pip install -e ".[redis]"' in out
    assert "(the cache is set by cache=)" in out
