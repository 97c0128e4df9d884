"""The company register behind the demo estate: one name per party number.

The ERP's customer ``C00042``, the CRM's account ``ACC-00042`` and the consignee of some
shipments are the same company, and each system spells its name its own way: the ERP as
registered, the CRM with legal forms spelled out or in capitals, the carrier in capitals.
Entity resolution has to see through exactly that. Names are unique for party numbers up
to :data:`DISTINCT_NAMES`; a few are non-ASCII, as real customer lists are.
"""

from __future__ import annotations

_HEADS = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Vandelay", "Soylent",
          "Tyrell", "Wonka", "Cyberdyne", "Oceanic", "Hooli", "Massive", "Nakatomi",
          "Virtucon", "Monarch", "Aperture", "Duff", "Gekko")
_TAILS = ("Industrial", "Supply", "Components", "Logistics", "Imports", "Foods", "Systems",
          "Confections", "Parts", "Freight", "Holdings", "Trading", "Engineering", "Textiles",
          "Metals", "Chemicals", "Plastics", "Instruments", "Tools", "Packaging")
_FORMS = ("Ltd", "Inc", "LLC", "BV", "PLC", "GmbH")
_SPELLED_OUT = {"Ltd": "Limited", "Inc": "Incorporated"}
NON_ASCII_NAMES = (
    "Müller GmbH",
    "Société Générale",
    "Ørsted Handel A/S",
    "Łódź Tekstil Sp. z o.o.",
    "Kōbe Seimitsu 株式会社",
)
DISTINCT_NAMES = len(_HEADS) * len(_TAILS)
# Coprime with DISTINCT_NAMES, so numbers 1..DISTINCT_NAMES visit every pair once, and
# neighbouring parties get unrelated names.
_STRIDE = 7919


def company_name(number: int) -> str:
    """The registered name of party ``number`` (1-based), as the ERP holds it."""
    if number % 37 == 5:
        return NON_ASCII_NAMES[(number // 37) % len(NON_ASCII_NAMES)]
    head, tail = divmod(number * _STRIDE % DISTINCT_NAMES, len(_TAILS))
    return f"{_HEADS[head]} {_TAILS[tail]} {_FORMS[number % len(_FORMS)]}"


def crm_spelling(number: int) -> str:
    """Party ``number`` as the CRM's sales reps typed it."""
    name = company_name(number)
    if number % 4 == 1:
        head, _, form = name.rpartition(" ")
        name = f"{head} {_SPELLED_OUT.get(form, form)}"
    return name.upper() if number % 9 == 0 else name


def carrier_spelling(number: int) -> str:
    """Party ``number`` as the carrier prints it on a waybill."""
    name = company_name(number)
    return name.upper() if number % 3 == 0 else name
