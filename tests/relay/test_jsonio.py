"""JSON on the relay's path (`relay.jsonio`): orjson's speed, the standard library's answers."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.books import _json_document
from relay import jsonio

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                           max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_reads_what_the_standard_library_reads(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert jsonio.loads(text) == json.loads(text)
        assert jsonio.loads(text.encode()) == json.loads(text.encode())


@settings(max_examples=300, deadline=None)
@given(documents)
def test_writes_what_reads_back_the_same(value: object) -> None:
    written = jsonio.dumps(value)
    assert json.loads(written) == json.loads(json.dumps(value, ensure_ascii=False).encode("utf-8", "replace"))


@pytest.mark.parametrize("raw", [
    b'{"seed": 123456789012345678901234567890}',  # past 64 bits: orjson would read a float
    b'{"n": -18446744073709551616}',
    b'{"n": -9223372036854775809}',  # 19 digits, one past -2**63
    b'{"a": 1, "a": 2}',
    b'{"t": NaN, "u": -Infinity}',  # not JSON, but the standard library reads it: so do we
    b'{"big": 1E400}',
    b'["\\ud800 lone"]',
    '{"k": "v\u00e9"}'.encode("utf-16"),
    b' {"x": [1, 2.5, "\\u00e9"]} ',
])
def test_edge_cases_read_as_the_standard_library_reads_them(raw: bytes) -> None:
    ours, theirs = jsonio.loads(raw), json.loads(raw)
    assert repr(ours) == repr(theirs)  # repr: NaN equals nothing, and 1 == 1.0


def test_a_long_integer_stays_exact() -> None:
    assert jsonio.loads(b'{"seed": 123456789012345678901}')["seed"] == 123456789012345678901
    assert jsonio.loads('[99999999999999999999999]')[0] == 99999999999999999999999


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a":}', b"\xff\xfe\x00", b"[1,]", b"nul"])
def test_bad_json_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(raw)


@pytest.mark.parametrize("depth", [100_000, 1_000, 990])  # 990 and 1,000: within orjson's limit, past json's
def test_deep_nesting_raises_as_the_standard_library_does(depth: int) -> None:
    raw = b'{"x":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(RecursionError):
        json.loads(raw)
    with pytest.raises(RecursionError):
        jsonio.loads(raw)


@pytest.mark.parametrize("depth", [jsonio.SHALLOW, jsonio.SHALLOW + 1, 300])
def test_nesting_json_reads_is_read_and_written_back(depth: int) -> None:
    """Past 254 levels orjson writes nothing: `json` writes it, as it did."""
    raw = b"[" * depth + b"]" * depth
    value = jsonio.loads(raw)
    assert value == json.loads(raw) and jsonio.dumps(value) == raw


def test_what_orjson_refuses_to_write_is_written_by_the_standard_library() -> None:
    assert json.loads(jsonio.dumps({"n": 2**80})) == {"n": 2**80}
    assert json.loads(jsonio.dumps({1: "one"})) == {"1": "one"}
    assert jsonio.dumps({"m": "a\ud800b"}) == '{"m":"a?b"}'.encode()
    assert jsonio.dumps({"m": "é中"}) == '{"m":"é中"}'.encode()  # UTF-8, compact, as before
    deep: list = []
    for _ in range(400):
        deep = [deep]
    assert json.loads(jsonio.dumps(deep)) == deep


def test_a_float_that_is_not_a_number_is_written_as_null() -> None:
    assert json.loads(jsonio.dumps({"t": math.nan, "u": math.inf})) == {"t": None, "u": None}


def test_the_books_rows_document_as_the_standard_library_wrote_it() -> None:
    import datetime
    import ipaddress
    from decimal import Decimal

    rows = [[1, "gpt-4o", datetime.datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=datetime.timezone.utc),
             Decimal("1.25"), ipaddress.ip_address("10.0.0.1"), None, True, "中文"],
            [2, "m", datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(seconds=19270))),
             Decimal(0), ipaddress.ip_address("::1"), 2**60, False, ""],
            [3, "m", datetime.date(2026, 12, 7), Decimal(1), ipaddress.ip_address("::1"), 2**70, False, ""]]
    from billing.books import _json_value

    for batch in (rows[:1], rows[1:2], rows):  # the second's offset has seconds; the last an integer orjson refuses
        assert json.loads(_json_document(batch)) == json.loads(json.dumps(batch, default=_json_value))
    assert _json_document(rows[:1]).startswith('[[1,"gpt-4o","2026-12-07T10:00:00.123456+00:00","1.25","10.0.0.1",')
