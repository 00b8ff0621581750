"""The member statement as CSV and as a printable HTML page, for the CLI and the API alike."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from oppiva.bulk.files import neutralise
from oppiva.config import get_settings
from oppiva.errors import InvalidInput
from oppiva.loyalty.vouchers import MemberStatement

CSV_COLUMNS = (
    "at",
    "kind",
    "points",
    "balance",
    "rule",
    "reason",
    "staff",
    "source",
    "external_id",
    "receipt_id",
    "reward",
    "option",
    "voucher",
    "confirms_at",
    "expires_at",
    "shortfall",
)

KIND_WORDS = {
    "earn": "Earned",
    "spend": "Spent",
    "reverse": "Returned",
    "expire": "Expired",
    "adjust": "Adjusted",
}

_environment = Environment(
    loader=PackageLoader("oppiva.loyalty", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def to_csv(entries: Sequence[dict[str, Any]]) -> str:
    """The statement's entries as CSV, one row each; a text cell a spreadsheet would run as a
    formula is made inert (see `oppiva.bulk.files.neutralise`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = [entry.get(column) for column in CSV_COLUMNS]
        writer.writerow(
            "" if cell is None else neutralise(cell) if isinstance(cell, str) else cell
            for cell in row
        )
    return out.getvalue()


def because(entry: dict[str, Any]) -> str:
    """Why the entry is there, in words: its rule or reason, or the reward and voucher."""
    if entry.get("reward"):
        chosen = f" ({entry['option']})" if entry.get("option") else ""
        if entry["kind"] == "adjust":
            return f"Voucher {entry['voucher']} cancelled: {entry['reward']}{chosen}"
        return f"Reward: {entry['reward']}{chosen}, voucher {entry['voucher']}"
    parts = [entry.get("rule"), entry.get("reason")]
    return "; ".join(part for part in parts if part)


def _zone() -> ZoneInfo:
    name = get_settings().timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("OPPIVA_TIMEZONE", f"{name!r} is no time zone") from None


def to_html(statement: MemberStatement) -> str:
    """The statement as one self-contained page (its print style inline), in the business's
    time zone."""
    zone = _zone()

    def moment(value: datetime | str | None, with_time: bool = True) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        local = value.astimezone(zone)
        return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

    template = _environment.get_template("statement.html")
    return template.render(
        s=statement,
        balance=statement.balance,
        kinds=KIND_WORDS,
        moment=moment,
        because=because,
    )
