"""The privacy core: consent, preferences, subject access export and erasure."""
