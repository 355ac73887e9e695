"""The response cache: its key, what it stores, where it lives, and how it holds up under
threads, processes and a hard kill; `sigla cache info/clear` at the end.

The tests of what a cache does (the ``cache`` and ``cache_setting`` fixtures) run once per
backend: an SQLite file, and a real redis-server (tests/redis_server.py). What only one
backend has (a file's schema, a Redis password) is tested in its own place, Redis's in
tests/test_cache_redis.py.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOKEN

import sigla
from sigla import _cli_cache
from sigla._cache import (
    KEY_EXCLUDED,
    SCHEMA_VERSION,
    CacheTarget,
    cache_key,
    default_cache_path,
    open_cache,
    resolve_cache,
)
from sigla._cache_redis import PREFIX, RedisCache
from sigla._cache_sqlite import SQLiteCache
from sigla._config import resolve_settings
from sigla._core import Completion, Usage
from sigla._requests import build_call, build_messages
from sigla.cli import main
from sigla.errors import ConfigurationError, InvalidRequestError

SOURCE_ROOT = str(Path(sigla.__file__).resolve().parent.parent)

ANSWER = Completion(
    text="Paris.",
    finish_reason="stop",
    usage=Usage(prompt_tokens=12, completion_tokens=3, total_tokens=15),
    model="mistral-ai/Codestral-2501",
    id="chatcmpl-1",
)


def make_settings(**overrides):
    overrides.setdefault("token", TOKEN)
    return resolve_settings(env={}, gh_token=lambda: None, **overrides)


def make_call(settings=None, prompt="What is the capital of France?", **options):
    settings = settings or make_settings()
    messages = build_messages(
        None if "messages" in options else prompt,
        options.pop("system", None),
        options.pop("messages", None),
    )
    options.setdefault("temperature", 0.7)
    for name in ("max_tokens", "top_p", "stop", "seed"):
        options.setdefault(name, None)
    return build_call(settings, messages, **options)


def key_of(settings=None, **options):
    settings = settings or make_settings()
    call = make_call(settings, **options)
    return cache_key(provider=settings.provider, endpoint=settings.endpoint, call=call)


@pytest.fixture
def cache(cache_setting):
    """An empty cache, once per backend."""
    with open_cache(cache_setting) as opened:
        yield opened


def write_raw(setting: str, key: str, value: str) -> None:
    """Put ``value`` as the stored text of ``key``, behind the cache's back."""
    if setting.startswith("redis://"):
        import redis

        with redis.Redis.from_url(setting) as client:
            client.hset(PREFIX + key, "v", value)
        return
    with sqlite3.connect(setting) as db:
        db.execute("UPDATE responses SET value = ? WHERE key = ?", (value, key))


def backend_class(setting: str) -> type:
    return RedisCache if setting.startswith("redis://") else SQLiteCache


def process_env(**extra):
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
    return env


# ---------------------------------------------------------------- the key


def test_the_key_is_a_stable_sha256_of_the_request():
    key = key_of()
    assert key == key_of()
    assert len(key) == 64 and int(key, 16) >= 0
    # Pinned: a change in how keys are derived would silently empty every user's cache.
    call = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
    assert cache_key(provider="github", endpoint="https://e/inference", call=call) == (
        "a09c3e7f8c4c33bd6868eceae27493be3d7c567338921256fa16a441749ca526"
    )


@pytest.mark.parametrize(
    ("what", "settings", "options"),
    [
        ("model", {"model": "openai/gpt-4o-mini"}, {}),
        ("prompt", {}, {"prompt": "What is the capital of Italy?"}),
        ("system", {}, {"system": "Answer in French."}),
        ("temperature", {}, {"temperature": 0.2}),
        ("max_tokens", {}, {"max_tokens": 5}),
        ("top_p", {}, {"top_p": 0.5}),
        ("stop", {}, {"stop": ["\n"]}),
        ("seed", {}, {"seed": 7}),
        (
            "provider",
            {"provider": "openai", "endpoint": "https://models.github.ai/inference"},
            {},
        ),
        ("endpoint", {"endpoint": "http://127.0.0.1:8765/inference"}, {}),
    ],
)
def test_every_answer_changing_parameter_changes_the_key(what, settings, options):
    base = make_settings()
    changed = make_settings(**{"model": base.model, **settings})
    assert key_of(changed, **options) != key_of(base), what


def test_the_key_ignores_the_timeout_and_the_credential():
    assert key_of(make_settings(timeout=5)) == key_of(make_settings(timeout=120))
    assert key_of(make_settings(token="ghp_another_token_0123456789")) == key_of()


@pytest.mark.parametrize("field", sorted(KEY_EXCLUDED))
def test_transport_fields_do_not_change_the_key(field):
    """So that stream() and chat() of one request share an entry."""
    call = make_call()
    with_field = {**call, field: {"stream": True}.get(field, 1234)}
    assert cache_key(provider="github", endpoint="https://e", call=with_field) == cache_key(
        provider="github", endpoint="https://e", call=call
    )


def test_a_field_the_key_does_not_know_changes_it():
    """A field added to the call later must miss, never be served another request's answer."""
    call = make_call()
    assert cache_key(provider="p", endpoint="e", call={**call, "response_format": "json"}) != (
        cache_key(provider="p", endpoint="e", call=call)
    )


def test_message_order_matters_but_key_order_inside_a_message_does_not():
    turns = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    swapped = [turns[0], turns[2], turns[1]]
    assert key_of(messages=turns) != key_of(messages=swapped)
    reordered = [{"content": t["content"], "role": t["role"]} for t in turns]
    assert key_of(messages=turns) == key_of(messages=reordered)


def test_temperature_one_and_one_point_zero_share_a_key():
    assert key_of(temperature=1) == key_of(temperature=1.0)


def test_a_value_that_is_not_json_cannot_be_keyed():
    call = {"model": "m", "messages": [{"role": "user", "content": [{"type": "x", "v": {1}}]}]}
    with pytest.raises(InvalidRequestError, match="set"):
        cache_key(provider="p", endpoint="e", call=call)


def test_no_credential_reaches_the_key_or_the_file(tmp_path):
    settings = make_settings(
        provider="openai",
        model="m",
        endpoint="https://user:hunter2password@llm.example/v1?key=querysecret42",
    )
    assert "hunter2password" not in settings.endpoint  # what the caller passes: no secret
    assert "querysecret42" not in settings.endpoint
    key = key_of(settings)
    assert len(key) == 64 and TOKEN not in key
    path = tmp_path / "answers.sqlite"
    with open_cache(path) as cache:
        assert cache.put(key, ANSWER)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert ANSWER.text.encode() in stored  # the scan reads what was written
    for secret in (TOKEN, "hunter2password", "querysecret42"):
        assert secret.encode() not in stored


# ---------------------------------------------------------------- what is stored


def test_a_finished_answer_comes_back_with_its_usage(cache):
    assert cache.get("k") is None
    assert cache.put("k", ANSWER) is True
    assert cache.get("k") == ANSWER


def test_an_answer_cut_at_max_tokens_is_stored_and_unknown_usage_stays_unknown(cache):
    cut = Completion(text="Par", finish_reason="length", usage=None, model=None, id=None)
    assert cache.put("k", cut) is True
    assert cache.get("k") == cut


@pytest.mark.parametrize("finish_reason", ["content_filter", "tool_calls", "error", None])
def test_an_unfinished_or_filtered_answer_is_not_stored(cache, finish_reason):
    answer = Completion("", finish_reason, Usage(1, 0, 1), "m", "id")
    assert cache.put("k", answer) is False
    assert cache.get("k") is None
    assert cache.info().entries == 0


def test_a_later_answer_replaces_an_earlier_one(cache):
    cache.put("k", ANSWER)
    newer = Completion("Paris, France.", "stop", None, "m", "id-2")
    cache.put("k", newer)
    assert cache.get("k") == newer
    assert cache.info().entries == 1


def test_a_damaged_entry_is_a_miss(cache_setting):
    with open_cache(cache_setting) as cache:
        cache.put("k", ANSWER)
        cache.put("j", ANSWER)
    write_raw(cache_setting, "k", '{"text": 3}')
    write_raw(cache_setting, "j", "not json")
    with open_cache(cache_setting) as cache:
        assert cache.get("k") is None
        assert cache.get("j") is None


def test_info_tells_where_how_many_how_large_and_how_old(cache_setting):
    now = [1_700_000_000.0]
    cache = backend_class(cache_setting)(cache_setting, clock=lambda: now[0])
    empty = cache.info()
    assert (empty.entries, empty.oldest, empty.newest) == (0, None, None)
    assert empty.location == cache_setting
    cache.put("a", ANSWER)
    now[0] += 3600
    cache.put("b", ANSWER)
    info = cache.info()
    assert info.entries == 2
    assert info.size_bytes > 0
    assert info.oldest is not None and info.newest is not None
    assert info.oldest.timestamp() == 1_700_000_000.0
    assert (info.newest - info.oldest).total_seconds() == 3600
    assert info.oldest.tzinfo is not None
    cache.close()


def test_clear_removes_every_entry_and_gives_the_space_back(cache):
    big = Completion("x" * 20_000, "stop", None, "m", None)
    for i in range(200):
        cache.put(f"k{i}", big)
    before = cache.info().size_bytes
    assert cache.clear() == 200
    assert cache.info().entries == 0
    assert cache.get("k1") is None
    assert cache.info().size_bytes < before / 10
    assert cache.clear() == 0


def test_the_file_is_a_versioned_wal_database(tmp_path):
    path = tmp_path / "answers.sqlite"
    open_cache(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_closed_cache_refuses_use_and_closing_twice_is_fine(cache_setting):
    cache = open_cache(cache_setting)
    with cache:
        cache.put("k", ANSWER)
    cache.close()
    with pytest.raises(ConfigurationError, match="closed"):
        cache.get("k")


def test_repr_shows_the_place_and_pickling_reopens_it(cache_setting):
    with open_cache(cache_setting) as cache:
        assert repr(cache) == f"{backend_class(cache_setting).__name__}({cache_setting!r})"
        cache.put("k", ANSWER)
        with pickle.loads(pickle.dumps(cache)) as copy:
            assert copy.get("k") == ANSWER
            assert copy is not cache


# ---------------------------------------------------------------- files that cannot serve


def test_a_file_that_is_not_sqlite_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "answers.sqlite"
    path.write_bytes(b"these are not the answers you are looking for" * 100)
    with pytest.raises(ConfigurationError) as caught:
        open_cache(str(path))
    message = str(caught.value)
    assert str(path) in message and "delete it" in message and "choose another" in message
    assert "cache=" in message


def test_another_programs_database_is_left_alone(tmp_path):
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (name TEXT)")
    with pytest.raises(ConfigurationError, match="customers"):
        open_cache(path)
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"customers"}


def test_a_file_from_a_newer_sigla_is_refused(tmp_path):
    path = tmp_path / "answers.sqlite"
    open_cache(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigurationError, match="newer sigla"):
        open_cache(path)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="directory") as caught:
        open_cache(tmp_path)
    assert "responses.sqlite" in str(caught.value)  # the file it suggests


def test_an_unwritable_place_is_refused_naming_the_variable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError) as caught:
        open_cache(None, environ={"SIGLA_CACHE_URL": str(blocker / "answers.sqlite")})
    message = str(caught.value)
    assert "writable" in message and "SIGLA_CACHE_URL" in message


def test_missing_folders_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "answers.sqlite"
    open_cache(path).close()
    assert path.is_file()


# ---------------------------------------------------------------- the setting


def test_none_reads_sigla_cache_url_and_is_off_without_it(tmp_path):
    assert open_cache(None, environ={}) is None
    assert open_cache(None, environ={"SIGLA_CACHE_URL": "  "}) is None
    target = resolve_cache(None, environ={"SIGLA_CACHE_URL": str(tmp_path / "x.sqlite")})
    assert target == CacheTarget("sqlite", str(tmp_path / "x.sqlite"), "SIGLA_CACHE_URL")


def test_none_reads_the_real_environment_by_default(tmp_path, monkeypatch):
    assert open_cache(None) is None
    monkeypatch.setenv("SIGLA_CACHE_URL", f"sqlite:///{tmp_path}/env.sqlite")
    with open_cache(None) as cache:
        assert cache.info().location == f"{tmp_path}/env.sqlite"


def test_false_is_off_even_when_the_variable_is_set(tmp_path):
    assert open_cache(False, environ={"SIGLA_CACHE_URL": str(tmp_path / "x.sqlite")}) is None


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is the Linux convention")
def test_true_is_responses_sqlite_in_the_user_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "sigla" / "responses.sqlite"
    assert default_cache_path() == str(expected)
    with open_cache(True) as cache:
        cache.put("k", ANSWER)
        assert cache.info().location == str(expected)
    assert expected.is_file()


def test_paths_and_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = {
        "rel.sqlite": tmp_path / "rel.sqlite",
        "sqlite:///rel.sqlite": tmp_path / "rel.sqlite",  # SQLAlchemy: three slashes, relative
        f"sqlite:///{tmp_path}/abs.sqlite": tmp_path / "abs.sqlite",  # four: absolute
        "SQLite:///Rel.sqlite": tmp_path / "Rel.sqlite",
        "~/c.sqlite": tmp_path / "home" / "c.sqlite",
        f"  {tmp_path}/spaced.sqlite  ": tmp_path / "spaced.sqlite",
    }
    for setting, path in cases.items():
        assert resolve_cache(setting).location == str(path), setting
    assert resolve_cache(Path("p.sqlite")).location == str(tmp_path / "p.sqlite")


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        (3, "must be True"),
        (b"answers.sqlite", "must be True"),
        (Path(""), "is a directory"),  # Path("") is "."
        ("", "empty"),
        ("   ", "empty"),
        ("memcached://localhost:11211", "redis://, rediss://, sqlite://"),
        ("redis://localhost:6379/one", "database number"),
        ("redis://:6379/0", "a host"),
        ("redis://localhost:port/0", "a port"),
        ("file:///tmp/x.sqlite", "unknown scheme 'file'"),
        ("sqlite://host/x.sqlite", "three slashes"),
        ("sqlite:///", "names no file"),
        ("sqlite:///:memory:", "names no file"),
        ("sqlite:///x.sqlite?mode=ro", "names no file"),
        ("true", "looks like a switch"),
        ("1", "looks like a switch"),
        ("off", "looks like a switch"),
    ],
)
def test_a_bad_setting_says_what_is_allowed_and_names_the_argument(setting, words):
    with pytest.raises(ConfigurationError) as caught:
        open_cache(setting)
    message = str(caught.value)
    assert words in message
    assert "cache=" in message


def test_a_bad_variable_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="SIGLA_CACHE_URL"):
        open_cache(None, environ={"SIGLA_CACHE_URL": "memcached://x"})


@pytest.mark.parametrize(
    "url",
    [
        "memcached://:hunter2password@cache.example:11211",  # an unknown scheme
        "redis://:hunter2password@cache.example:6379/x",  # a Redis URL that cannot be
        "redis://user:hunter2password@cache.example:port/1",
    ],
)
def test_a_url_that_cannot_be_used_does_not_show_its_password(url):
    with pytest.raises(ConfigurationError) as caught:
        open_cache(url)
    assert "hunter2password" not in str(caught.value)
    assert "cache.example" in str(caught.value)


def test_importing_the_cache_imports_neither_sqlite_nor_redis_nor_platformdirs():
    code = (
        "import sys, sigla._cache, sigla.cli; "
        "print(sorted(m for m in ('sqlite3', 'redis', 'platformdirs') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=process_env()
    )
    assert done.stdout.strip() == "[]", done.stderr


# ---------------------------------------------------------------- threads and processes


def test_threads_share_one_cache(cache):
    errors: list[BaseException] = []

    def work(me: int) -> None:
        try:
            for i in range(150):
                answer = Completion(f"{me}-{i}", "stop", Usage(1, 1, 2), "m", None)
                assert cache.put(f"own-{me}-{i}", answer)
                cache.put(f"shared-{i}", Completion(f"s{i}", "stop", None, None, None))
                assert cache.get(f"own-{me}-{i}") == answer
                assert cache.get(f"shared-{i}").text == f"s{i}"
                if i % 50 == 0:
                    cache.info()
        except BaseException as error:  # re-raised by the test below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(me,)) for me in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.info().entries == 8 * 150 + 150


WORKER = """
import os, sys, time
from sigla._cache import open_cache
from sigla._core import Completion, Usage

path, go, me, workers, n = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
while not os.path.exists(go):
    time.sleep(0.001)
cache = open_cache(path)  # all at once (SQLite: on a file that does not exist yet)
for i in range(n):
    own = f"w{me}-{i}"
    assert cache.put(own, Completion(own, "stop", Usage(1, 2, 3), "m", own))
    cache.put(f"shared-{i}", Completion(f"s{i}", "length", None, "m", None))
    assert cache.get(own).text == own
    assert cache.get(f"shared-{i}").text == f"s{i}"
    other = cache.get(f"w{(me + 1) % workers}-{i}")
    assert other is None or other.usage == Usage(1, 2, 3)
cache.close()
print("done")
"""


def test_processes_write_and_read_one_cache_at_once(tmp_path, cache_setting):
    path, go = cache_setting, tmp_path / "go"
    workers, n = 4, 120
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(go), str(me), str(workers), str(n)],
            env=process_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in range(workers)
    ]
    time.sleep(0.5)  # let every interpreter start and wait at the line
    go.touch()
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.strip() == "done"
        assert "locked" not in err
    with open_cache(path) as cache:
        assert cache.info().entries == workers * n + n
        assert cache.get(f"w3-{n - 1}").text == f"w3-{n - 1}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_forked_child_gets_its_own_connection(tmp_path):
    import multiprocessing

    cache = open_cache(tmp_path / "answers.sqlite")
    cache.put("parent", ANSWER)
    inherited = cache._db  # SQLite forbids using a connection across fork()

    def child() -> None:
        assert cache.get("parent") == ANSWER
        cache.put("child", ANSWER)
        assert cache._db is not inherited
        cache.close()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert cache.get("child") == ANSWER  # and the parent's connection still works
    cache.close()


BATCH = """
import sys
from sigla._cache import open_cache
from sigla._core import Completion, Usage

cache = open_cache(sys.argv[1])
for i in range(int(sys.argv[2])):
    key = f"item-{i}"
    if cache.get(key) is None:
        cache.put(key, Completion(f"answer {i}", "stop", Usage(5, 2, 7), "m", None))
    print(i, flush=True)
"""


def run_again(path: Path, items: int) -> list[int]:
    """What a batch does with the cache: ask only the items that have no answer yet."""
    sent = []
    with open_cache(path) as cache:
        for i in range(items):
            if cache.get(f"item-{i}") is None:
                sent.append(i)
                cache.put(f"item-{i}", Completion(f"answer {i}", "stop", None, "m", None))
    return sent


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_a_batch_killed_hard_resumes_with_only_the_missing_items(tmp_path):
    path, items = tmp_path / "batch.sqlite", 100_000
    process = subprocess.Popen(
        [sys.executable, "-c", BATCH, str(path), str(items)],
        env=process_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if int(line) >= 300:  # the 301st answer is stored; the process is mid-batch
            break
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    process.stdout.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in db.execute("SELECT key FROM responses")}
    assert len(stored) > 300
    assert stored == {f"item-{i}" for i in range(len(stored))}  # every answer kept, in order
    sent = run_again(path, len(stored) + 50)
    assert sent == list(range(len(stored), len(stored) + 50))
    with open_cache(path) as cache:
        assert cache.get("item-0") == Completion("answer 0", "stop", Usage(5, 2, 7), "m", None)


# ---------------------------------------------------------------- sigla cache info / clear


def invoke(args, env=None, input=None):
    return CliRunner().invoke(main, args, env=env, input=input, catch_exceptions=False)


def one_error_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigla: error: "), result.stderr
    return lines[0]


@pytest.fixture
def filled(tmp_path):
    path = tmp_path / "answers.sqlite"
    with open_cache(path) as cache:
        for i in range(3):
            cache.put(f"k{i}", ANSWER)
    return path


def test_cli_info_shows_path_entries_size_and_ages(filled):
    result = invoke(["cache", "info", "--cache", str(filled)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"cache         {filled}   (from --cache)" in out
    assert "entries       3\n" in out
    assert "size          " in out and "bytes" in out
    assert "oldest        20" in out and "UTC" in out and "newest        20" in out


def test_cli_info_reads_sigla_cache_url(filled):
    result = invoke(["cache", "info"], env={"SIGLA_CACHE_URL": f"sqlite:///{filled}"})
    assert result.exit_code == 0
    assert "(from SIGLA_CACHE_URL)" in result.stdout and "entries       3" in result.stdout


def test_cli_info_without_a_cache_says_how_to_name_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    result = invoke(["cache", "info"])
    assert result.exit_code == 0
    out = result.stdout
    assert "--cache" in out and "SIGLA_CACHE_URL" in out and "cache=True" in out
    assert default_cache_path() in out
    assert not Path(default_cache_path()).exists()  # info creates nothing
    with open_cache(True) as cache:
        cache.put("k", ANSWER)
    assert "entries       1" in invoke(["cache", "info"]).stdout


def test_cli_info_on_a_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "none" / "answers.sqlite"
    result = invoke(["cache", "info", "--cache", str(path)])
    assert result.exit_code == 0
    assert "no file there yet" in result.stdout
    assert not path.parent.exists()


def test_cli_clear_with_yes_prints_how_many_were_removed(filled):
    result = invoke(["cache", "clear", "--cache", str(filled), "--yes"])
    assert result.exit_code == 0
    assert result.stdout == f"Removed 3 entries from {filled}.\n"
    with open_cache(filled) as cache:
        assert cache.info().entries == 0


def test_cli_clear_without_yes_off_a_terminal_removes_nothing(filled):
    result = invoke(["cache", "clear", "--cache", str(filled)])
    assert result.exit_code == 2
    assert "--yes" in one_error_line(result)
    with open_cache(filled) as cache:
        assert cache.info().entries == 3


@pytest.mark.parametrize(("reply", "left"), [("n\n", 3), ("y\n", 0)])
def test_cli_clear_asks_at_a_terminal(filled, monkeypatch, reply, left):
    monkeypatch.setattr(_cli_cache, "_stdin_is_terminal", lambda: True)
    result = invoke(["cache", "clear", "--cache", str(filled)], input=reply)
    assert result.exit_code == 0
    assert "Remove all 3 entries" in result.stdout
    with open_cache(filled) as cache:
        assert cache.info().entries == left


def test_cli_clear_without_a_cache_says_how_to_name_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    result = invoke(["cache", "clear", "--yes"])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--cache" in line and "SIGLA_CACHE_URL" in line and default_cache_path() in line


def test_cli_clear_of_a_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "answers.sqlite"
    result = invoke(["cache", "clear", "--cache", str(path), "--yes"])
    assert result.exit_code == 0 and "nothing to clear" in result.stdout
    assert not path.exists()


@pytest.mark.parametrize("command", ["info", "clear"])
def test_cli_bad_settings_end_as_one_line_naming_the_option(tmp_path, command):
    result = invoke(["cache", command, "--cache", "memcached://localhost:11211"])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--cache" in line and "sqlite://" in line and "redis://" in line
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"x" * 4096)
    result = invoke(["cache", command, "--cache", str(corrupt)])
    assert result.exit_code == 2
    assert "delete it" in one_error_line(result)


def test_cli_cache_help_lists_info_and_clear():
    out = invoke(["cache", "--help"]).stdout
    assert "info" in out and "clear" in out
