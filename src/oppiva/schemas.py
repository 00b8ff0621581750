"""What every input shape shares."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator


class InputModel(BaseModel):
    """Base of every input shape: text holding a NUL character is refused (PostgreSQL cannot
    store it, and SQLite would cut a search pattern short at it)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("contains a NUL character")
        return value
