"""Factories for domain objects, so tests say only what matters to them."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from oppiva.customers import service
from oppiva.customers.models import Customer
from oppiva.customers.schemas import CustomerCreate

_numbers = itertools.count(1)


def make_customer(session: Session, **fields: Any) -> Customer:
    """A person with a unique email and phone unless the test says otherwise."""
    n = next(_numbers)
    data: dict[str, Any] = {
        "name": f"Testi Asiakas {n}",
        "emails": [f"asiakas{n}@example.fi"],
        "phones": [f"+35840{n:07d}"],
    }
    data.update(fields)
    return service.add_customer(session, CustomerCreate.model_validate(data))
