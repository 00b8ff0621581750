"""Voucher codes: random, typeable, and telling a mistyped code from an unknown one.

A code is 15 characters of Crockford's base32 drawn with `secrets` (75 bits) and one Luhn mod
32 check character, shown in groups of four: `K7QH-2M9D-XW4P-T3N3`.
"""

from __future__ import annotations

import secrets

from oppiva.errors import InvalidInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U, so a code reads aloud and types without confusion."""
CODE_LENGTH = 16
_READ_AS = {"O": "0", "I": "1", "L": "1"}


def _luhn_sum(code: str, double_first: bool) -> int:
    """Luhn mod 32 over `code` from its end; doubling starts at the last character when
    `double_first` (computing a check character) or the one before it (verifying)."""
    total, factor = 0, 2 if double_first else 1
    for char in reversed(code):
        addend = factor * ALPHABET.index(char)
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return total


def check_character(body: str) -> str:
    """The Luhn mod 32 check character of `body`: any one mistyped character, and any two
    neighbours swapped (but 0 and Z), changes it."""
    return ALPHABET[(32 - _luhn_sum(body, True) % 32) % 32]


def new_code() -> str:
    """A random voucher code (75 random bits from `secrets`) with its check character."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH - 1))
    return body + check_character(body)


def format_code(code: str) -> str:
    """The code as people see it: groups of four joined by hyphens."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_code(text: str) -> str:
    """The code as stored, from what was typed: case, spaces and hyphens ignored, O read as 0,
    I and L as 1. A code that cannot be one is InvalidInput("code", why): mistyped."""
    if not isinstance(text, str):
        raise InvalidInput("code", "is required")
    code = "".join(_READ_AS.get(c, c) for c in text.upper() if c not in " -")
    wrong = sorted({c for c in code if c not in ALPHABET})
    if wrong:
        raise InvalidInput(
            "code", f"mistyped: {', '.join(map(repr, wrong))} is not in a voucher code"
        )
    if len(code) != CODE_LENGTH:
        raise InvalidInput(
            "code", f"mistyped: a voucher code has {CODE_LENGTH} characters, not {len(code)}"
        )
    if _luhn_sum(code, False) % 32 != 0:
        raise InvalidInput("code", "mistyped: the check character does not match")
    return code
