"""Datasets shipped with oppiva, turned into the import format on demand."""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from importlib import resources
from pathlib import Path

from oppiva.bulk.files import Mapping
from oppiva.errors import InvalidInput

DATASETS = ("cdnow",)


@dataclass(frozen=True)
class Dataset:
    """The files of a dataset, in the import format."""

    products: Path
    outlets: Path
    receipts: Path
    mapping: Mapping


def dataset_files(name: str, folder: Path | None = None) -> Dataset:
    """Write the dataset `name` in the import format into `folder` (a temporary one by default)."""
    if name != "cdnow":
        raise InvalidInput("dataset", f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    folder = folder or Path(tempfile.mkdtemp(prefix="oppiva-cdnow-"))
    return cdnow(folder)


def cdnow(folder: Path) -> Dataset:
    """The CDNOW sample as receipts: one receipt per purchase record, the CDs as one line.

    Customers are named by their CDNOW id (`customer_ref`, an external identity `cdnow:ID`),
    so each becomes one recognised profile. The dollar value is kept to the cent: the unit
    price is rounded up and the difference is a discount.
    """
    text = resources.files("oppiva.demo").joinpath("data/cdnow_sample.txt").read_text()
    products = folder / "cdnow-products.csv"
    outlets = folder / "cdnow-outlets.csv"
    receipts = folder / "cdnow-receipts.csv"
    with products.open("w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["sku", "name", "department", "group", "price"],
                ["CD", "Compact disc", "music", "CDs", "0"],
            ]
        )
    with outlets.open("w", newline="") as f:
        csv.writer(f).writerows([["code", "name", "kind"], ["cdnow", "CDNOW", "web"]])
    seen: dict[tuple[str, str], int] = {}
    with receipts.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "source",
                "receipt_id",
                "purchased_at",
                "store",
                "customer_ref",
                "sku",
                "quantity",
                "unit_price",
                "discount",
                "line_total",
            ]
        )
        for row in text.splitlines():
            if not row.strip():
                continue
            customer, _, day, cds, dollars = row.split()
            n = seen[(customer, day)] = seen.get((customer, day), 0) + 1
            quantity = max(int(cds), 1)
            value = Decimal(dollars)
            unit = (value / quantity).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
            discount = unit * quantity - value
            stamp = f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00-05:00"
            out.writerow(
                [
                    "cdnow",
                    f"{customer}-{day}-{n}",
                    stamp,
                    "cdnow",
                    customer,
                    "CD",
                    quantity,
                    unit,
                    discount,
                    value,
                ]
            )
    return Dataset(products, outlets, receipts, Mapping())
