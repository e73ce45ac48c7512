"""Kubernetes resource quantities (``100m``, ``1.5``, ``1Gi``, ``1e3``).

Values are exact :class:`~decimal.Decimal` numbers so that ``0.1`` CPU plus
``0.2`` CPU is exactly ``300m`` and the scheduler's sums never drift. Like
Kubernetes, the serialised form is canonical: values are rounded up to a
whole nano-unit and printed with the largest suffix that keeps an integer
mantissa, in the format family (binary, decimal, exponent) of the input.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Literal

QuantityFormat = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

QUANTITY_REGEX_MESSAGE = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+\.?[0-9]*|\.[0-9]+)"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)
# Exponents far beyond any real resource would make Decimal arithmetic slow.
_MAX_EXPONENT = 64
_NANO = Decimal("1e-9")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; str() is Kubernetes' message."""

    def __init__(self, text: str) -> None:
        super().__init__(QUANTITY_REGEX_MESSAGE)
        self.text = text


def _match(text: str) -> re.Match[str]:
    if not isinstance(text, str) or len(text) > 256:
        raise QuantityError(str(text))
    m = _QUANTITY.fullmatch(text)
    if m is None:
        raise QuantityError(text)
    return m


def quantity_format(text: str) -> QuantityFormat:
    """The format family a quantity was written in (it decides re-serialisation)."""
    m = _match(text)
    if m["binary"]:
        return "BinarySI"
    if m["exp"]:
        return "DecimalExponent"
    return "DecimalSI"


def parse_quantity(text: str | int | float) -> Decimal:
    """Exact value of a quantity; numbers (as a YAML manifest may hold) are accepted too."""
    if isinstance(text, bool):
        raise QuantityError(str(text))
    if isinstance(text, int):
        return Decimal(text)
    if isinstance(text, float):
        return Decimal(repr(text))
    m = _match(text)
    number = Decimal(m["number"])
    if m["sign"] == "-":
        number = -number
    with localcontext() as ctx:
        ctx.prec = 100
        if m["binary"]:
            return number * (Decimal(1024) ** _BINARY[m["binary"]])
        if m["exp"]:
            exponent = int(m["exp"][1:])
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(text)
            return number.scaleb(exponent)
        return number.scaleb(_DECIMAL[m["decimal"] or ""])


def _ceil(value: Decimal, unit: Decimal) -> int:
    """ceil(value / unit) as an int; Kubernetes rounds every read-out up."""
    with localcontext() as ctx:
        ctx.prec = 100
        try:
            return int((value / unit).to_integral_value(rounding=ROUND_CEILING))
        except InvalidOperation as exc:  # pragma: no cover - infinities cannot be parsed
            raise QuantityError(str(value)) from exc


def cpu_millis(text: str | int | float) -> int:
    """Milli-units, rounded up: ``"100m"`` → 100, ``"1.5"`` → 1500, ``"1n"`` → 1."""
    return _ceil(parse_quantity(text), Decimal("0.001"))


def bytes_value(text: str | int | float) -> int:
    """Whole units (bytes for memory), rounded up: ``"1Ki"`` → 1024, ``"1500m"`` → 2."""
    return _ceil(parse_quantity(text), Decimal(1))


def _round_to_nano(value: Decimal) -> int:
    """Nano-units, rounded away from zero (Kubernetes never rounds a request down)."""
    with localcontext() as ctx:
        ctx.prec = 100
        scaled = value / _NANO
        rounding = ROUND_CEILING if value >= 0 else ROUND_FLOOR
        return int(scaled.to_integral_value(rounding=rounding))


def _format_decimal(value: Decimal, exponent_style: bool) -> str:
    nanos = _round_to_nano(value)
    if nanos == 0:
        return "0"
    sign = "-" if nanos < 0 else ""
    mantissa, exponent = abs(nanos), -9
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if exponent_style:
        suffix = f"e{exponent}" if exponent else ""
    else:
        suffix = _DECIMAL_SUFFIX[exponent]
    return f"{sign}{mantissa}{suffix}"


def _format_binary(value: Decimal) -> str | None:
    """Binary form when the value is a whole number of at least 1Ki, else None."""
    if value != value.to_integral_value() or abs(value) < 1024:
        return None
    mantissa, power = abs(int(value)), 0
    while mantissa % 1024 == 0 and power < 6:
        mantissa //= 1024
        power += 1
    sign = "-" if value < 0 else ""
    suffix = next(s for s, p in _BINARY.items() if p == power) if power else ""
    return f"{sign}{mantissa}{suffix}"


def format_quantity(value: Decimal | int, fmt: QuantityFormat = "DecimalSI") -> str:
    """Canonical text for a value, as Kubernetes serialises a Quantity of this format."""
    value = Decimal(value)
    if fmt == "BinarySI":
        text = _format_binary(value)
        if text is not None:
            return text
        return _format_decimal(value, exponent_style=False)
    return _format_decimal(value, exponent_style=fmt == "DecimalExponent")


def canonicalize(text: str | int | float) -> str:
    """Re-serialise a quantity in its own format, e.g. ``"1.5Gi"`` → ``"1536Mi"``."""
    fmt: QuantityFormat = quantity_format(text) if isinstance(text, str) else "DecimalSI"
    return format_quantity(parse_quantity(text), fmt)
