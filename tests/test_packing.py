"""sigla._packing: splitting a text on its boundaries, packing items into few requests."""

from __future__ import annotations

import pytest

from sigla._packing import pack, split_text
from sigla._tokens import estimate_tokens


def test_split_text_cuts_on_paragraphs_first():
    paragraphs = [f"Paragraph {i} says one thing. It says it twice." for i in range(12)]
    text = "\n\n".join(paragraphs)
    parts = split_text(text, 40, estimate_tokens)
    assert "".join(parts) == text
    assert len(parts) > 1
    assert all(estimate_tokens(p) <= 40 for p in parts)
    assert all(p.strip() in text and p.rstrip().endswith("twice.") for p in parts)


def test_split_text_falls_back_to_sentences_words_then_characters():
    sentences = " ".join(f"Sentence number {i} is here." for i in range(40))
    parts = split_text(sentences, 30, estimate_tokens)
    assert "".join(parts) == sentences
    assert all(p.rstrip().endswith(".") for p in parts)
    words = " ".join(["word"] * 500)  # no sentence ends
    parts = split_text(words, 25, estimate_tokens)
    assert "".join(parts) == words and all(estimate_tokens(p) <= 25 for p in parts)
    assert all(p.strip().split(" ")[-1] == "word" for p in parts)
    blob = "x" * 5_000  # one word: characters are the last resort
    parts = split_text(blob, 50, estimate_tokens)
    assert "".join(parts) == blob and all(estimate_tokens(p) <= 50 for p in parts)


def test_pack_places_each_item_once_in_the_fullest_pack_it_fits():
    assert pack([5, 5, 5, 3, 3, 2], 10) == [[0, 1], [2, 3, 5], [4]]
    with pytest.raises(ValueError, match="item 1"):
        pack([1, 11], 10)
