"""Every domain's tables, imported once so that the metadata (and Alembic) sees them all."""

from oppiva.access import models as access
from oppiva.customers import models as customers
from oppiva.privacy import models as privacy
from oppiva.purchases import models as purchases

__all__ = ["access", "customers", "privacy", "purchases"]
