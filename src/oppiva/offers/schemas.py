"""API shapes of personal offers."""

from __future__ import annotations


# --- candidates and evaluation ---


# --- campaigns, coupons and their lifecycle ---


# --- till offers and choose your offers ---
