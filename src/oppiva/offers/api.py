"""HTTP routes of personal offers: candidates, campaigns and coupons, till offers, choices."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["offers"])


# --- candidates and evaluation ---


# --- campaigns, coupons and their lifecycle ---


# --- till offers and choose your offers ---
