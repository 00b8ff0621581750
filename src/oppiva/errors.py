"""One exception hierarchy, mapped once to HTTP status codes (api) and exit codes (cli)."""

from __future__ import annotations


class OppivaError(Exception):
    """Base of every error oppiva raises on purpose; the message names the place and the reason."""

    http_status = 400


class InvalidInput(OppivaError):
    """A value was refused; `field` names where it came from."""

    http_status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(OppivaError):
    """The thing asked for does not exist (or no longer exists)."""

    http_status = 404


class Conflict(OppivaError):
    """The change clashes with what is stored; `customer_id` names the customer it clashes with."""

    http_status = 409

    def __init__(self, message: str, customer_id: int | None = None) -> None:
        super().__init__(message)
        self.customer_id = customer_id


class AppendOnly(OppivaError):
    """History (the timeline, consent decisions) is only ever added to."""

    http_status = 409


class Unauthorized(OppivaError):
    """No credential, or one that is wrong, expired or revoked."""

    http_status = 401


class Forbidden(OppivaError):
    """The credential is good but lacks the permission."""

    http_status = 403


class RateLimited(OppivaError):
    """Too many attempts; `retry_after_s` says when to try again."""

    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
