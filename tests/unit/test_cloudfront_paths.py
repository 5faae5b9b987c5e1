"""CloudFront path encoding: the one-regex shortcut for plain paths returns what the full checks return."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdnpurge.runtime.providers.cloudfront import MAX_PATH_LENGTH, _checked_encoding, encode_path

# Every ASCII character (the shortcut's whole alphabet and what it must refuse), and a few beyond it
characters = st.sampled_from([chr(code) for code in range(0x80)] + ["é", "€", "\u2028", "\ud800"])


def outcome(encode: Callable[[str], str], path: str) -> str:
    try:
        return f"ok {encode(path)}"
    except ValueError as exc:
        return f"refused {exc}"


@settings(max_examples=2000, deadline=None)
@given(st.text(characters, max_size=12), st.booleans())
def test_encode_path_answers_as_the_full_checks_do(text: str, rooted: bool) -> None:
    path = f"/{text}" if rooted else text
    assert outcome(encode_path, path) == outcome(_checked_encoding, path)


@pytest.mark.parametrize("length", [MAX_PATH_LENGTH - 1, MAX_PATH_LENGTH, MAX_PATH_LENGTH + 1])
def test_plain_paths_at_the_length_limit_answer_as_the_full_checks_do(length: int) -> None:
    path = "/" + "a" * (length - 1)
    assert outcome(encode_path, path) == outcome(_checked_encoding, path)
