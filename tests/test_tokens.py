"""sigla._tokens: token counts offline, from mistral-common's bundled tokenizer or an estimate."""

from __future__ import annotations

import math
import subprocess
import sys
import types

import pytest

from sigla import _tokens
from sigla._tokens import counter_for, estimate_tokens


def test_estimate_counts_words_digits_and_other_scripts_high():
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello world") == 5  # (2 + 2) letters-tokens, +10%
    assert estimate_tokens("1234567890") == 11  # tekken spends one token per digit
    assert estimate_tokens("知识胶囊") == 5  # one per CJK character
    assert estimate_tokens("🚀") == 5  # one per UTF-8 byte
    # where ceil(chars / 3) would count digits, CJK and emoji far too low
    for text in ("4471 1840 120 25", "知识胶囊是一个工程知识库", "🚀🔥✅"):
        assert estimate_tokens(text) > math.ceil(len(text) / 3)


def test_estimate_is_subadditive_across_a_blank_so_packs_never_exceed_the_sum():
    a, b = "Restart the cache nightly.", "The p99 rose to 1,840 ms."
    assert estimate_tokens(a + "\n\n" + b) <= estimate_tokens(a) + 2 + estimate_tokens(b)


def test_models_without_a_tokenizer_use_the_estimate():
    assert counter_for("openai/gpt-4o-mini") is _tokens.FALLBACK
    assert counter_for("llama3.2") is _tokens.FALLBACK


@pytest.fixture
def no_tokenizer_cache():
    _tokens._mistral_counter.cache_clear()
    yield
    _tokens._mistral_counter.cache_clear()


def test_mistral_models_fall_back_to_the_estimate_without_mistral_common(
    monkeypatch, no_tokenizer_cache
):
    monkeypatch.setitem(sys.modules, "mistral_common", None)  # as if not installed
    assert counter_for("mistral-ai/Codestral-2501") is _tokens.FALLBACK


def _fake_mistral_common(monkeypatch, made: list[str]) -> None:
    """A stand-in for mistral_common's MistralTokenizer: one token per character."""

    class Inner:
        def encode(self, text: str, bos: bool, eos: bool) -> list[int]:
            assert not bos and not eos
            return [ord(c) for c in text]

    class MistralTokenizer:
        def __init__(self, name: str) -> None:
            made.append(name)
            self.instruct_tokenizer = types.SimpleNamespace(tokenizer=Inner())

        @classmethod
        def v3(cls, is_tekken: bool = False) -> MistralTokenizer:
            return cls("tekken" if is_tekken else "v3")

        @classmethod
        def v7(cls) -> MistralTokenizer:
            return cls("v7")

    names = ["mistral_common", "mistral_common.tokens", "mistral_common.tokens.tokenizers"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    module = types.ModuleType("mistral_common.tokens.tokenizers.mistral")
    module.MistralTokenizer = MistralTokenizer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_mistral_models_use_mistral_commons_bundled_tokenizer(monkeypatch, no_tokenizer_cache):
    made: list[str] = []
    _fake_mistral_common(monkeypatch, made)
    counter = counter_for("mistral-ai/Codestral-2501")
    assert counter.name == "mistral-common tekken"
    assert counter.count("x" * 100) == 105  # exact count, +5% for the chat template
    assert counter_for("codestral-latest") is counter  # loaded once
    assert counter_for("mistral-ai/Mistral-Large-2411").name.endswith("SentencePiece v7")
    assert made == ["tekken", "v7"]


def test_the_real_mistral_common_counts_offline(no_tokenizer_cache):
    pytest.importorskip("mistral_common")
    counter = counter_for("mistral-ai/Codestral-2501")
    assert counter.name == "mistral-common tekken"
    assert (
        0
        < counter.count("Restart the cache nightly.")
        < estimate_tokens("Restart the cache nightly.")
    )


def test_importing_the_counters_loads_no_tokenizer():
    code = "import sys, sigla._tokens; print(sorted(m for m in sys.modules if 'mistral' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
