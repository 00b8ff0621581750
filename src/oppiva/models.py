"""Every domain's tables, imported once so that the metadata (and Alembic) sees them all."""

from oppiva.access import models as access
from oppiva.analytics import models as analytics
from oppiva.customers import models as customers
from oppiva.loyalty import models as loyalty
from oppiva.offers import models as offers
from oppiva.privacy import models as privacy
from oppiva.purchases import models as purchases
from oppiva.segments import models as segments
from oppiva.value import models as value

__all__ = [
    "access",
    "analytics",
    "customers",
    "loyalty",
    "offers",
    "privacy",
    "purchases",
    "segments",
    "value",
]
