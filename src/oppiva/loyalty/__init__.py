"""Loyalty programmes: membership and the points ledger (earning rules, tiers and rewards build on it)."""
