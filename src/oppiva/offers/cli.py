"""`oppiva offers ...`: train the recommenders, evaluate them, run campaigns, read offers."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Personal offers: recommenders, coupon campaigns, till offers and chosen offers.",
    no_args_is_help=True,
)


# --- candidates and evaluation ---


# --- campaigns, coupons and their lifecycle ---


# --- till offers and choose your offers ---
