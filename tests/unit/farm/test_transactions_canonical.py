"""decode_tx's fast canonical check decides exactly as the RFC 8785 reference does.

The reference is what decode_tx did before any shortcut: ``json.loads`` the bytes,
encode the value with ``rfc8785.dumps`` and refuse unless that gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from farm.errors import TransactionError
from farm.transactions import _Numbers, _plainly_canonical, decode_tx


def _reference_stage(data: bytes) -> str:
    """Which refusal of the canonical stage the reference gives ``data``, or "ok"."""
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "not JSON"
    try:
        canonical = rfc8785.dumps(value)
    except (ValueError, TypeError):
        return "cannot be canonicalized"
    return "ok" if canonical == data else "not in canonical form"


def _stage(data: bytes) -> str:
    """Which refusal of the canonical stage decode_tx gives ``data``, or "ok"."""
    try:
        decode_tx(data)
    except TransactionError as exc:
        for stage in ("not JSON", "cannot be canonicalized", "not in canonical form"):
            if stage in str(exc):
                return stage
    return "ok"


def _stdlib_fast(value: object) -> bytes | None:
    """The fast encoding decode_tx used before orjson (standard library)."""
    try:
        return json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    except (ValueError, TypeError):
        return None


def test_orjson_writes_every_code_point_as_the_standard_library() -> None:
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for start in range(0, len(points), 4096):
        text = "".join(chr(c) for c in points[start : start + 4096])
        assert orjson.dumps(text) == json.dumps(text, ensure_ascii=False).encode("utf-8")
        # and as a key, in an object with ASCII neighbours
        obj = {text: 1, "a": "\x00\x1f\x7f"}
        assert orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) == _stdlib_fast(obj)
    for c in range(0x80):
        one = {chr(c): chr(c), "k" + chr(c): [chr(c)]}
        assert orjson.dumps(one, option=orjson.OPT_SORT_KEYS) == _stdlib_fast(one)


def test_lone_surrogates_are_left_to_the_reference() -> None:
    value = json.loads(b'{"a":"\\ud800"}')
    assert not _plainly_canonical(value, b'{"a":"\\ud800"}', _Numbers())


_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
)
_JSON = st.recursive(
    _LEAF,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=4) | st.text(max_size=3),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _spellings(value: Any) -> list[bytes]:
    out = []
    with contextlib.suppress(ValueError, TypeError):
        out.append(rfc8785.dumps(value))
    for ascii_only in (True, False):
        for sort in (True, False):
            for seps in ((",", ":"), (", ", ": ")):
                out.append(
                    json.dumps(
                        value, ensure_ascii=ascii_only, sort_keys=sort, separators=seps
                    ).encode("utf-8")
                )
    return out


@settings(max_examples=400, deadline=None)
@given(_JSON)
@example({"a": 1.0})
@example({"a": 2**53})
@example({"b": 1, "a": 2})
@example({"a": "\u2028\x7f\x1f\n"})
@example({"\u00e9": 1, "z": 2})
@example({"\U0001f600": 1, "\uff61": 2})
def test_canonical_stage_matches_the_reference(value: Any) -> None:
    for data in _spellings(value):
        assert _stage(data) == _reference_stage(data), data


@settings(max_examples=400, deadline=None)
@given(_JSON, st.data())
def test_mutated_bytes_match_the_reference(value: Any, draw: st.DataObject) -> None:
    try:
        data = bytearray(rfc8785.dumps(value))
    except (ValueError, TypeError):
        data = bytearray(json.dumps(value).encode())
    for _ in range(draw.draw(st.integers(1, 3))):
        at = draw.draw(st.integers(0, len(data)))
        what = draw.draw(
            st.sampled_from(
                [b" ", b"\\u0041", b"\\/", b"0", b"-", b".5", b"e1", b'"', b"\\", b",", b"\xc3\xa9"]
            )
        )
        if draw.draw(st.booleans()) and at < len(data):
            data[at : at + 1] = what
        else:
            data[at:at] = what
    assert _stage(bytes(data)) == _reference_stage(bytes(data))


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_fast_check_proves_only_canonical_bytes(value: Any) -> None:
    """Whenever the fast check says yes, the reference encoder gives the same bytes; and
    it says yes wherever the standard-library check it replaced did."""
    for data in _spellings(value):
        numbers = _Numbers()
        parsed = json.loads(data, parse_float=numbers.float, parse_int=numbers.int)
        fast = _plainly_canonical(parsed, data, numbers)
        if fast:
            assert rfc8785.dumps(parsed) == data
        old = numbers.plain and data.isascii() and _stdlib_fast(parsed) == data
        assert fast == old


def test_decoder_per_thread() -> None:
    good = b'{"type":"retire"}'
    bad = b'{"type":"retire","a":1.5}'
    seen: set[int] = set()

    def run(i: int) -> tuple[str, str]:
        seen.add(threading.get_ident())
        return _stage(good if i % 2 else bad), _stage(bad if i % 2 else good)

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(run, range(200)))
    assert got == [
        ("ok", "not in canonical form") if i % 2 else ("not in canonical form", "ok")
        for i in range(200)
    ]


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf{"type":"retire"}',
        '{"type":"retire"}'.encode("utf-16"),
        '{"type":"retire"}'.encode("utf-32-le"),
        b'{"type":"\xed\xa0\x80"}',
        b'{"type":NaN}',
        b'{"type":"retire"} ',
        b'{"type":"retire","type":"retire"}',
        b'{"n":-0,"type":"retire"}',
        b'{"n":9007199254740992,"type":"retire"}',
        b'{"n":1E2,"type":"retire"}',
    ],
)
def test_odd_inputs_match_the_reference(data: bytes) -> None:
    assert _stage(data) == _reference_stage(data)


@pytest.mark.parametrize("depth", [900, 5_000, 100_000])
def test_deep_nesting_is_refused_not_a_crash(depth: int) -> None:
    deep = b"[" * depth + b"]" * depth
    for data in (deep, b"[" * depth, b'{"a":' * depth + b"1" + b"}" * depth,
                 b'{"type":"attest","x":' + deep + b"}"):  # fmt: skip
        with pytest.raises(TransactionError):
            decode_tx(data)
