"""The simulated chain end to end: simulate, import everything, import again, nothing new."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from oppiva.customers.bulk import import_customers
from oppiva.customers.models import Customer
from oppiva.demo.simulator import simulate
from oppiva.purchases.importer import import_outlets, import_products, import_receipts
from oppiva.purchases.models import Receipt, ReceiptLine


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_simulated_chain_imports_without_rejects_and_only_once(db, tmp_path, fmt):
    summary = simulate(120, 3, 6, 7, tmp_path, fmt=fmt)
    files = {p.stem: p for p in summary.files}
    steps = [
        (import_outlets, files["stores"], {}),
        (import_products, files["products"], {}),
        (import_customers, files["customers"], {"default_source": "crm"}),
        (import_receipts, files["receipts"], {"batch_rows": 2000}),
    ]
    for run, path, options in steps:
        done = run(db, path, **options)
        assert done.rejected_rows == 0, (
            path.name,
            done.rejects_path and done.rejects_path.read_text()[:500],
        )
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Receipt)) == summary.receipts
        assert s.scalar(select(func.count()).select_from(ReceiptLine)) == summary.lines
        members = s.scalar(
            select(func.count()).select_from(Customer).where(Customer.enrolled.is_(True))
        )
        assert members == summary.customers
        identified = s.scalar(
            select(func.count()).select_from(Receipt).where(Receipt.customer_id.is_not(None))
        )
        assert identified == summary.receipts - summary.anonymous_receipts
    for run, path, options in steps:
        again = run(db, path, **options)
        assert (again.new, again.rejected_rows) == (0, 0), path.name
