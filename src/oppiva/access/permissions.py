"""The permission matrix, in one place: what each permission allows and which roles hold it.

Routes declare one permission each (`oppiva.api.security.require`); API keys carry
permissions as scopes; roles are data in the store, seeded from `DEFAULT_ROLES`.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    CUSTOMERS_READ = "customers:read"
    """The customer card, search results, the timeline, contact persons, merges."""
    CUSTOMERS_WRITE = "customers:write"
    """Add and rectify customers, identities, contacts on the timeline, contact persons."""
    CUSTOMERS_MERGE = "customers:merge"
    """Merge two records of one person, and undo it."""
    IDENTIFY = "identify"
    """Recognise a customer from identifiers (the till's question)."""
    CONSENT_READ = "consent:read"
    """Consent decisions and preferences."""
    CONSENT_WRITE = "consent:write"
    """Record consent decisions and preferences."""
    CONSENT_CHECK = "consent:check"
    """Ask `can_contact` (a yes or no with its reason, nothing else)."""
    PRIVACY_EXPORT = "privacy:export"
    """Subject-access exports."""
    PRIVACY_ERASE = "privacy:erase"
    """Erase a person."""
    RECEIPTS_WRITE = "receipts:write"
    """Send receipts and returns (the till's and the web shop's key)."""
    CATALOGUE_WRITE = "catalogue:write"
    """Products and outlets."""
    SEGMENTS_WRITE = "segments:write"
    """Define and delete saved segments."""
    LOYALTY_READ = "loyalty:read"
    """Loyalty programmes, a member's balance and statement."""
    LOYALTY_WRITE = "loyalty:write"
    """Make customers members of loyalty programmes."""
    OFFERS_READ = "offers:read"
    """A customer's offers and coupons, campaign reports."""
    OFFERS_WRITE = "offers:write"
    """Train recommenders, run campaigns, record what a customer chose or saw."""
    AGGREGATES_READ = "aggregates:read"
    """Counts and shares over the whole register, never a person."""
    AUDIT_READ = "audit:read"
    """The audit log."""
    USERS_ADMIN = "users:admin"
    """Staff accounts and roles."""
    KEYS_ADMIN = "keys:admin"
    """API keys for tills and integrations."""


P = Permission

DEFAULT_ROLES: dict[str, tuple[str, frozenset[Permission]]] = {
    "admin": ("everything, including users and keys", frozenset(Permission)),
    "service": (
        "customer service: the whole customer relationship, contacts and consents",
        frozenset(
            {
                P.CUSTOMERS_READ,
                P.CUSTOMERS_WRITE,
                P.CUSTOMERS_MERGE,
                P.IDENTIFY,
                P.CONSENT_READ,
                P.CONSENT_WRITE,
                P.CONSENT_CHECK,
                P.LOYALTY_READ,
                P.LOYALTY_WRITE,
                P.OFFERS_READ,
            }
        ),
    ),
    "marketing": (
        "segments, value, programmes, offers, campaigns; customer cards read-only",
        frozenset(
            {
                P.CUSTOMERS_READ,
                P.CONSENT_READ,
                P.CONSENT_CHECK,
                P.AGGREGATES_READ,
                P.SEGMENTS_WRITE,
                P.LOYALTY_READ,
                P.LOYALTY_WRITE,
                P.OFFERS_READ,
                P.OFFERS_WRITE,
            }
        ),
    ),
    "analyst": ("aggregates only: no names or contact details", frozenset({P.AGGREGATES_READ})),
    "privacy": (
        "the data protection officer: exports, rectification, erasure, the audit log",
        frozenset(
            {
                P.CUSTOMERS_READ,
                P.CUSTOMERS_WRITE,
                P.CONSENT_READ,
                P.CONSENT_WRITE,
                P.PRIVACY_EXPORT,
                P.PRIVACY_ERASE,
                P.AUDIT_READ,
            }
        ),
    ),
    "store": (
        "a store's staff: identify a customer and what the till needs",
        frozenset({P.IDENTIFY, P.CONSENT_CHECK}),
    ),
}


def parse_permissions(
    names: list[str] | tuple[str, ...], field: str = "scopes"
) -> frozenset[Permission]:
    """Permissions named in `names`; an unknown name is refused with the list of known ones."""
    from oppiva.errors import InvalidInput

    out = set()
    for name in names:
        try:
            out.add(Permission(name.strip()))
        except ValueError:
            known = ", ".join(p.value for p in Permission)
            raise InvalidInput(field, f"unknown permission {name!r} (known: {known})") from None
    return frozenset(out)
