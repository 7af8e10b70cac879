"""Which readings the statistics use: the one invalidating mask of the API, and flag names.

The mask is :data:`luftnett.contracts.units.INVALIDATING_FLAGS` (the flag registry decides what
invalidates a reading); every aggregate, exceedance count and ``valid_only`` download of the API
filters with :data:`INVALID_MASK` and nothing else.
"""

from __future__ import annotations

from luftnett.contracts.units import INVALIDATING_FLAGS, ReadingFlag

__all__ = ["FLAG_BITS", "INVALID_MASK", "flag_names"]

#: a reading with any of these bits is left out of means, counts and percentiles
INVALID_MASK: int = int(INVALIDATING_FLAGS)

#: flag name -> bit value, for documentation and the metadata file
FLAG_BITS: dict[str, int] = {f.name.lower(): int(f.value) for f in ReadingFlag if f.name}


def flag_names(bits: int) -> list[str]:
    """Decoded names of a ``flags`` bit mask, lowest bit first."""
    return [name for name, bit in FLAG_BITS.items() if bits & bit]
