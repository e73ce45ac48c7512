"""Kubernetes resource quantities as plain integers.

CPU is counted in millicores, everything else in base units (bytes, pods),
rounded up as Kubernetes does for requests.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(value: object, *, field: str = "quantity") -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, mult = text[: -len(suffix)], Decimal(_SUFFIX[suffix])
            break
    else:
        number, mult = text, Decimal(1)
    try:
        return Decimal(number) * mult
    except InvalidOperation as exc:
        raise ValueError(f"{field}: {value!r} is not a quantity") from exc


def milli(value: object, *, field: str = "cpu") -> int:
    return math.ceil(parse_quantity(value, field=field) * 1000)


def units(value: object, *, field: str = "quantity") -> int:
    return math.ceil(parse_quantity(value, field=field))
