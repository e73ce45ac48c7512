from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.resources.quantity import (
    QuantityError,
    bytes_value,
    canonicalize,
    cpu_millis,
    format_quantity,
    parse_quantity,
    quantity_format,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("1", Decimal(1)),
        ("1.5", Decimal("1.5")),
        ("1Gi", Decimal(1024**3)),
        ("500Mi", Decimal(500 * 1024**2)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1E", Decimal(10**18)),
        ("250u", Decimal("0.00025")),
        ("3n", Decimal("0.000000003")),
        (".5", Decimal("0.5")),
        ("+2", Decimal(2)),
        ("-2Ki", Decimal(-2048)),
        ("12e-3", Decimal("0.012")),
    ],
)
def test_parse(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Kb", "1 Gi", "1.2.3", "Gi", "1K", "1ki", "--1",
                                  "1e", "0x10", "1e999"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(text)
    assert "quantities must match the regular expression" in str(info.value)


def test_numbers_from_yaml_are_quantities() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.5) == Decimal("0.5")
    with pytest.raises(QuantityError):
        parse_quantity(True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.5", "1500m"),
        ("0.1", "100m"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("1.5Gi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1024Mi", "1Gi"),
        ("1000Ki", "1000Ki"),
        ("0.5Ki", "512"),
        ("1e3", "1e3"),
        ("1500e0", "1500"),
        ("1.0000000001", "1000000001n"),
        ("0.0000000001", "1n"),
        ("0", "0"),
        ("-1.5", "-1500m"),
        ("2M", "2M"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    assert canonicalize(text) == canonical


def test_format_family() -> None:
    assert quantity_format("1Gi") == "BinarySI"
    assert quantity_format("1G") == "DecimalSI"
    assert quantity_format("1") == "DecimalSI"
    assert quantity_format("1e9") == "DecimalExponent"


@pytest.mark.parametrize(
    ("text", "millis", "units"),
    [("100m", 100, 1), ("1", 1000, 1), ("1.5", 1500, 2), ("1n", 1, 1), ("2Ki", 2048000, 2048),
     ("0", 0, 0), ("250m", 250, 1), ("1k", 1000000, 1000)],
)
def test_read_outs_round_up(text: str, millis: int, units: int) -> None:
    assert cpu_millis(text) == millis
    assert bytes_value(text) == units


nanos = st.integers(min_value=-(10**21), max_value=10**21)


@given(nanos, st.sampled_from(["DecimalSI", "DecimalExponent", "BinarySI"]))
def test_format_parse_round_trip(n: int, fmt: str) -> None:
    value = Decimal(n).scaleb(-9)
    text = format_quantity(value, fmt)  # type: ignore[arg-type]
    assert parse_quantity(text) == value
    assert canonicalize(text) == text


@given(st.integers(min_value=1, max_value=1023), st.integers(min_value=1, max_value=6))
def test_binary_multiples_keep_a_binary_suffix(mantissa: int, power: int) -> None:
    text = format_quantity(Decimal(mantissa * 1024**power), "BinarySI")
    assert text.endswith("i")
    assert bytes_value(text) == mantissa * 1024**power


@given(st.integers(min_value=0, max_value=10**15))
def test_millis_of_formatted_millis(m: int) -> None:
    assert cpu_millis(format_quantity(Decimal(m).scaleb(-3))) == m
