"""The retail simulator: deterministic, streaming, well-formed import files, and the truths
behind them visible in the receipts."""

from __future__ import annotations

import csv
import json
import re
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from oppiva.customers.identities import normalise_phone
from oppiva.demo.cli import simulate_command
from oppiva.demo.simulator import LIFESTYLES, SimulationSummary, simulate

START = date(2025, 1, 6)
HELSINKI = ZoneInfo("Europe/Helsinki")
COLUMNS = {
    "stores": "code,name,kind,city",
    "products": "sku,name,department,group,subgroup,brand,price,cost,launch_date,attributes",
    "customers": "customer_ref,name,given_name,family_name,language,birthday,"
    "relationship_start,email,phone,card,street,postal_code,city,consent_profiling,"
    "consent_personalised_offers,consent_marketing",
    "receipts": "source,receipt_id,purchased_at,store,card,email,phone,payment_token,currency,"
    "line_no,sku,quantity,unit_price,discount,line_total,returns_receipt_id",
}
NUMERIC = {"price", "cost", "line_no", "quantity", "unit_price", "discount", "line_total"}
# The small run: 14 weeks from 6 January, so the clocks go forward (30 March) inside it.
MEMBERS, STORES, WEEKS = 400, 3, 14


def spearman(a: Any, b: Any) -> float:
    """Rank correlation: the truth drives the counts, whatever the shape of the relation."""
    rank_a = np.argsort(np.argsort(np.asarray(a, dtype=float)))
    rank_b = np.argsort(np.argsort(np.asarray(b, dtype=float)))
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def canonical(name: str, value: Any) -> str | None:
    """One spelling per value whatever the format: numbers normalised, dates ISO, null None."""
    if value is None or value == "":
        return None
    if name in NUMERIC:
        return str(Decimal(str(value)).normalize())
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def read_rows(path: Path) -> list[tuple[str | None, ...]]:
    """A CSV, JSON lines or Parquet file's rows, spelled alike for comparison."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            names = next(reader)
            return [
                tuple(canonical(n, v) for n, v in zip(names, row, strict=True)) for row in reader
            ]
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                record = json.loads(line, parse_float=Decimal)
                rows.append(tuple(canonical(n, v) for n, v in record.items()))
        return rows
    table = pq.read_table(path)
    return [
        tuple(canonical(n, v) for n, v in zip(table.column_names, row, strict=True))
        for row in zip(*(table.column(n).to_pylist() for n in table.column_names), strict=True)
    ]


def read_dicts(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as the importer sees them: strings, empty for missing."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SimulationSummary, Path]]:
    """The same small simulation written in every format."""
    runs = {}
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path_factory.mktemp(fmt)
        runs[fmt] = (simulate(MEMBERS, STORES, WEEKS, 11, out, fmt=fmt, chunk_size=150), out)
    return runs


@pytest.fixture(scope="module")
def small(formats: dict[str, tuple[SimulationSummary, Path]]) -> dict[str, list[dict[str, str]]]:
    """The small run's CSV files, read."""
    out = formats["csv"][1]
    return {name: read_dicts(out / f"{name}.csv") for name in COLUMNS}


@dataclass
class World:
    """A year of a larger chain, read back column-wise, with the truth."""

    summary: SimulationSummary
    lines: dict[str, Any]
    truth: dict[str, Any]
    who: dict[tuple[str, str], str]
    products: dict[str, Any]
    product_truth: dict[str, Any]
    staples: dict[str, Any]
    customers: dict[str, Any]

    def buyer(self) -> np.ndarray:
        """The truth's customer_ref of every line."""
        return np.array(
            [self.who[k] for k in zip(self.lines["source"], self.lines["receipt_id"], strict=True)]
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A year of 3,000 members at four stores, in Parquet, with its truth."""
    out = tmp_path_factory.mktemp("world")
    summary = simulate(3000, 4, 52, 5, out, fmt="parquet", chunk_size=1000)
    receipts = pq.read_table(out / "receipts.parquet").to_pydict()
    who = pq.read_table(summary.truth.receipts).to_pydict()
    return World(
        summary=summary,
        lines={k: np.array(v, dtype=object) for k, v in receipts.items()},
        truth=pq.read_table(summary.truth.customers).to_pydict(),
        who=dict(
            zip(
                zip(who["source"], who["receipt_id"], strict=True), who["customer_ref"], strict=True
            )
        ),
        products=pq.read_table(out / "products.parquet").to_pydict(),
        product_truth=pq.read_table(summary.truth.products).to_pydict(),
        staples=pq.read_table(summary.truth.staples).to_pydict(),
        customers=pq.read_table(out / "customers.parquet").to_pydict(),
    )


def receipts_of(rows: list[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    """The receipts of a receipts file, as runs of neighbouring rows with the same id."""
    run: list[dict[str, str]] = []
    for row in rows:
        if run and (row["source"], row["receipt_id"]) != (run[0]["source"], run[0]["receipt_id"]):
            yield run
            run = []
        run.append(row)
    if run:
        yield run


# Files, columns, determinism -------------------------------------------------------------


def test_files_have_exactly_the_columns_of_the_import_format(
    formats: dict[str, tuple[SimulationSummary, Path]],
) -> None:
    summary, out = formats["csv"]
    for name, header in COLUMNS.items():
        assert (out / f"{name}.csv").read_text(encoding="utf-8").splitlines()[0] == header
    jsonl = formats["jsonl"][1]
    for name, header in COLUMNS.items():
        first = json.loads((jsonl / f"{name}.jsonl").open(encoding="utf-8").readline())
        assert ",".join(first) == header
    parquet = formats["parquet"][1]
    for name, header in COLUMNS.items():
        assert ",".join(pq.read_schema(parquet / f"{name}.parquet").names) == header
    assert {p.name for p in summary.files} == {p.name for p in out.iterdir()}
    assert pq.read_schema(summary.truth.customers).names[:5] == [
        "customer_ref",
        "lifestyle",
        "rate",
        "dropout_p",
        "home_store",
    ]


def test_same_arguments_give_the_same_bytes_and_another_seed_other_bytes(tmp_path: Path) -> None:
    args = {"customers": 300, "stores": 2, "weeks": 8, "chunk_size": 100}
    for fmt in ("csv", "jsonl", "parquet"):
        first = simulate(seed=3, out=tmp_path / f"{fmt}-a", fmt=fmt, **args)
        simulate(seed=3, out=tmp_path / f"{fmt}-b", fmt=fmt, **args)
        simulate(seed=4, out=tmp_path / f"{fmt}-c", fmt=fmt, **args)
        for path in first.files:
            again = tmp_path / f"{fmt}-b" / path.name
            assert path.read_bytes() == again.read_bytes(), path.name
        receipts = f"receipts.{fmt}"
        other = (tmp_path / f"{fmt}-c" / receipts).read_bytes()
        assert (tmp_path / f"{fmt}-a" / receipts).read_bytes() != other


def test_every_format_holds_the_same_rows(
    formats: dict[str, tuple[SimulationSummary, Path]],
) -> None:
    for name in COLUMNS:
        rows = {fmt: read_rows(out / f"{name}.{fmt}") for fmt, (_, out) in formats.items()}
        assert rows["csv"], name
        assert rows["jsonl"] == rows["csv"], name
        assert rows["parquet"] == rows["csv"], name


def test_counts_in_the_summary_match_the_files(
    formats: dict[str, tuple[SimulationSummary, Path]], small: dict[str, list[dict[str, str]]]
) -> None:
    summary = formats["csv"][0]
    receipts = list(receipts_of(small["receipts"]))
    assert summary.customers == len(small["customers"]) == MEMBERS
    assert summary.stores == len(small["stores"]) == STORES + 2
    assert summary.products == len(small["products"])
    assert summary.lines == len(small["receipts"])
    assert summary.receipts == len(receipts)
    assert summary.returns == sum(1 for r in small["receipts"] if r["returns_receipt_id"])
    till = [r for r in receipts if r[0]["source"] == "till"]
    assert summary.till_receipts == len(till)
    assert summary.anonymous_receipts == sum(
        1 for r in till if not (r[0]["card"] or r[0]["payment_token"])
    )


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        simulate(0, 1, 1, 1, tmp_path)
    with pytest.raises(ValueError, match="unknown format"):
        simulate(1, 1, 1, 1, tmp_path, fmt="xml")


# Referential integrity and arithmetic ----------------------------------------------------


def test_stores_and_products_are_well_formed(small: dict[str, list[dict[str, str]]]) -> None:
    kinds = Counter(s["kind"] for s in small["stores"])
    assert kinds == {"store": STORES, "web": 1, "app": 1}
    assert {"web", "app"} <= {s["code"] for s in small["stores"]}
    products = small["products"]
    assert 2000 <= len(products) <= 3000
    assert len({p["sku"] for p in products}) == len(products)
    assert len({p["department"] for p in products}) >= 8
    assert len({p["subgroup"] for p in products}) > 40
    money = re.compile(r"^\d+\.\d\d$")
    end = START + timedelta(weeks=WEEKS)
    launched = 0
    for p in products:
        assert money.match(p["price"]) and money.match(p["cost"]), p
        assert Decimal(p["cost"]) < Decimal(p["price"]), p
        if p["launch_date"]:
            launched += START <= date.fromisoformat(p["launch_date"]) < end
        if p["attributes"]:
            assert isinstance(json.loads(p["attributes"]), dict)
    assert launched > 20
    attributes = [json.loads(p["attributes"]) for p in products if p["attributes"]]
    assert {"requires": "balcony"} in attributes
    assert {"audience": "baby"} in attributes
    assert {"age_limit": 18} in attributes


def test_receipts_refer_to_stores_and_products_and_add_up(
    small: dict[str, list[dict[str, str]]],
) -> None:
    stores = {s["code"]: s["kind"] for s in small["stores"]}
    skus = {p["sku"] for p in small["products"]}
    cent = Decimal("0.01")
    for row in small["receipts"]:
        assert row["store"] in stores and row["sku"] in skus
        assert row["currency"] == "EUR"
        quantity = Decimal(row["quantity"])
        price, discount, total = (Decimal(row[k]) for k in ("unit_price", "discount", "line_total"))
        assert quantity == quantity.quantize(Decimal("0.001")) and quantity != 0
        assert price > 0 and discount >= 0
        assert total == (quantity * price - discount).quantize(cent, ROUND_HALF_UP), row
        assert all(re.match(r"^-?\d+\.\d\d$", row[k]) for k in ("unit_price", "line_total"))
        expected = {"till": {"store"}, "webshop": {"web", "app"}}[row["source"]]
        assert stores[row["store"]] in expected


def test_receipts_are_contiguous_numbered_and_unique_per_source(
    small: dict[str, list[dict[str, str]]],
) -> None:
    seen: set[tuple[str, str]] = set()
    header = ("purchased_at", "store", "card", "email", "phone", "payment_token")
    for lines in receipts_of(small["receipts"]):
        key = (lines[0]["source"], lines[0]["receipt_id"])
        assert key not in seen, f"{key} is split or repeated"
        seen.add(key)
        assert [int(r["line_no"]) for r in lines] == list(range(1, len(lines) + 1))
        assert len({tuple(r[h] for h in header) for r in lines}) == 1
        assert len({r["returns_receipt_id"] for r in lines}) == 1
    ids = Counter(source for source, _ in seen)
    assert ids["till"] > 0 and ids["webshop"] > 0


def test_purchase_times_carry_the_helsinki_offset_within_opening_hours(
    small: dict[str, list[dict[str, str]]],
) -> None:
    offsets: Counter[str] = Counter()
    end = START + timedelta(weeks=WEEKS)
    for lines in receipts_of(small["receipts"]):
        text = lines[0]["purchased_at"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", text)
        moment = datetime.fromisoformat(text)
        local = moment.astimezone(HELSINKI)
        assert local.replace(tzinfo=None) == moment.replace(tzinfo=None), text
        assert local.utcoffset() == moment.utcoffset()
        assert START <= moment.date() < end
        if lines[0]["source"] == "till":
            assert 8 <= moment.hour < 21, text
        offsets[text[-6:]] += 1
    assert set(offsets) == {"+02:00", "+03:00"}


def test_returns_name_an_earlier_receipt_of_the_same_source_with_that_sku(
    small: dict[str, list[dict[str, str]]],
) -> None:
    sold: dict[tuple[str, str], tuple[datetime, dict[str, list[dict[str, str]]]]] = {}
    returns = 0
    for lines in receipts_of(small["receipts"]):
        first = lines[0]
        moment = datetime.fromisoformat(first["purchased_at"])
        if not first["returns_receipt_id"]:
            assert all(Decimal(r["quantity"]) > 0 for r in lines)
            skus: dict[str, list[dict[str, str]]] = defaultdict(list)
            for r in lines:
                skus[r["sku"]].append(r)
            sold[(first["source"], first["receipt_id"])] = (moment, skus)
            continue
        original = (first["source"], first["returns_receipt_id"])
        assert original in sold, original
        when, sold_skus = sold[original]
        assert when < moment
        for r in lines:
            returns += 1
            assert Decimal(r["quantity"]) < 0 and Decimal(r["line_total"]) < 0
            assert r["store"] == first["store"]
            # The same SKU may be on a receipt twice (two bags of apples): one of them.
            assert any(
                Decimal(r["quantity"]) == -Decimal(sale["quantity"])
                and Decimal(r["line_total"]) == -Decimal(sale["line_total"])
                and sale["discount"] == "0.00"
                for sale in sold_skus[r["sku"]]
            ), r
    assert returns > 0


# Identifiers -----------------------------------------------------------------------------


def test_members_have_unique_valid_identifiers(small: dict[str, list[dict[str, str]]]) -> None:
    customers = small["customers"]
    refs = [c["customer_ref"] for c in customers]
    assert all(re.match(r"^C\d{7}$", r) for r in refs) and len(set(refs)) == len(refs)
    for kind in ("card", "email", "phone"):
        values = [c[kind] for c in customers if c[kind]]
        assert len(values) == len(set(values)), kind
        assert 0.4 * len(customers) < len(values) < len(customers), kind
    assert all(re.match(r"^6012\d{12}$", c["card"]) for c in customers if c["card"])
    for c in customers:
        if c["phone"]:
            assert re.match(r"^\+3584\d{8}$", c["phone"])
            assert normalise_phone(c["phone"]) == c["phone"]
        if c["email"]:
            assert re.match(r"^[a-z]+\.[a-z]+\d+@example\.(fi|com|net)$", c["email"])
    languages = Counter(c["language"] for c in customers)
    assert set(languages) <= {"fi", "sv", "en"} and languages["fi"] > 0.75 * len(customers)
    assert all(c["given_name"] and c["family_name"] for c in customers)
    joined = [date.fromisoformat(c["relationship_start"]) for c in customers]
    assert sum(j >= START for j in joined) > 0.2 * len(customers)
    assert sum(j < START for j in joined) > 0.4 * len(customers)


def test_receipts_carry_identifiers_as_each_channel_does(world: World) -> None:
    lines = world.lines
    first = lines["line_no"] == 1
    source = lines["source"][first]
    card, email = lines["card"][first], lines["email"][first]
    phone, token = lines["phone"][first], lines["payment_token"][first]
    till, web = source == "till", source == "webshop"
    has = {
        k: np.array([v is not None for v in a])
        for k, a in {"card": card, "email": email, "phone": phone, "token": token}.items()
    }
    anonymous = till & ~has["card"] & ~has["token"]
    assert 0.15 <= anonymous.sum() / till.sum() <= 0.25
    assert not (till & has["email"]).any()
    assert (web <= has["email"]).all(), "every web or app order carries the email"
    both = web & has["card"] & has["email"]
    assert 0.05 < both.sum() / web.sum() < 0.5
    assert (web & has["phone"]).any()
    assert not (has["card"] & has["token"]).any()


def test_the_same_member_is_seen_on_several_channels(world: World) -> None:
    lines, buyer = world.lines, world.buyer()
    first = lines["line_no"] == 1
    cards = defaultdict(set)
    emails = defaultdict(set)
    for ref, card, email in zip(
        buyer[first], lines["card"][first], lines["email"][first], strict=True
    ):
        if card:
            cards[ref].add(card)
        if email:
            emails[ref].add(email)
    registered = {
        c: (card, email)
        for c, card, email in zip(
            world.customers["customer_ref"],
            world.customers["card"],
            world.customers["email"],
            strict=True,
        )
    }
    for ref, seen in cards.items():
        assert seen == {registered[ref][0]}, "a card on a receipt is the member's own"
    for ref, seen in emails.items():
        assert seen == {registered[ref][1]}
    assert len(set(cards) & set(emails)) > 20, "card in the store, email online"


def test_non_members_pay_with_the_same_token_again(world: World) -> None:
    lines, buyer = world.lines, world.buyer()
    first = lines["line_no"] == 1
    tokens: Counter[str] = Counter()
    owners = defaultdict(set)
    for ref, token in zip(buyer[first], lines["payment_token"][first], strict=True):
        if token:
            tokens[token] += 1
            owners[token].add(ref)
    assert all(len(o) == 1 for o in owners.values()), "a token belongs to one person"
    repeated = [t for t, n in tokens.items() if n >= 3 and next(iter(owners[t])).startswith("N")]
    assert len(repeated) > 50
    assert all(re.match(r"^tok_[0-9a-f]{24}$", t) for t in tokens)


# The truths behind the receipts ----------------------------------------------------------


def test_purchase_counts_follow_the_rate_with_heterogeneity_and_churn(world: World) -> None:
    truth = world.truth
    rate = np.array(truth["rate"])
    first = world.lines["line_no"] == 1
    sales = first & np.array([r is None for r in world.lines["returns_receipt_id"]])
    counts = Counter(world.buyer()[sales])
    purchases = np.array([counts.get(ref, 0) for ref in truth["customer_ref"]])
    assert (purchases == np.array(truth["purchases"])).all()
    assert spearman(purchases, rate) > 0.4
    assert 1.0 <= np.median(rate) * 52 / 12 <= 3.0, "median visits a month"
    assert np.percentile(rate, 90) > 3 * np.percentile(rate, 10), "heterogeneous rates"
    alive = np.array(truth["alive_at_end"])
    assert 0.3 < alive.mean() < 0.9, "visible churn within the year"
    assert np.array(truth["dropout_p"])[~alive].mean() > np.array(truth["dropout_p"])[alive].mean()


def test_lifestyles_have_clearly_different_department_shares(world: World) -> None:
    departments = dict(zip(world.products["sku"], world.products["department"], strict=True))
    names = sorted(set(departments.values()))
    index = {ref: i for i, ref in enumerate(world.truth["customer_ref"])}
    buyer = world.buyer()
    sales = np.array([r is None for r in world.lines["returns_receipt_id"]])
    counts = np.zeros((len(index), len(names)))
    column = {n: i for i, n in enumerate(names)}
    for ref, sku in zip(buyer[sales], world.lines["sku"][sales], strict=True):
        if ref in index:
            counts[index[ref], column[departments[sku]]] += 1
    enough = counts.sum(axis=1) >= 30
    shares = counts[enough] / counts[enough].sum(axis=1, keepdims=True)
    lifestyle = np.array(world.truth["lifestyle"])[enough]
    centres = np.array([shares[lifestyle == name].mean(axis=0) for name in LIFESTYLES])
    for a in range(len(LIFESTYLES)):
        for b in range(a + 1, len(LIFESTYLES)):
            assert np.abs(centres[a] - centres[b]).sum() > 0.1, (LIFESTYLES[a], LIFESTYLES[b])
    nearest = np.argmin(((shares[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert (np.array(LIFESTYLES)[nearest] == lifestyle).mean() > 0.6


def test_quiet_hours_and_busy_days(world: World) -> None:
    first = world.lines["line_no"] == 1
    till = first & (world.lines["source"] == "till")
    moments = [datetime.fromisoformat(t) for t in world.lines["purchased_at"][till]]
    weekday = Counter(m.weekday() for m in moments)
    hours = Counter(m.hour for m in moments if m.weekday() < 5)
    assert hours[16] + hours[17] > 1.8 * (hours[14] + hours[15])
    assert hours[16] + hours[17] > 1.5 * (hours[20] + hours[8])
    assert set(range(8, 21)) >= set(hours)
    assert min(weekday[4], weekday[5]) > 1.2 * max(weekday[d] for d in range(4))
    web = first & (world.lines["source"] == "webshop")
    assert any(datetime.fromisoformat(t).hour < 6 for t in world.lines["purchased_at"][web])
    christmas = [m for m in moments if (m.month, m.day) == (12, 25)]
    assert not christmas, "stores are closed on Christmas Day"


def test_returns_are_about_two_percent_of_lines(world: World) -> None:
    returned = np.array([r is not None for r in world.lines["returns_receipt_id"]])
    assert 0.015 <= returned.sum() / (~returned).sum() <= 0.025
    assert world.summary.returns == returned.sum()


def test_launched_products_sell_only_after_launch_mostly_to_their_lifestyle(world: World) -> None:
    launch = dict(zip(world.products["sku"], world.products["launch_date"], strict=True))
    target = dict(
        zip(world.product_truth["sku"], world.product_truth["launch_lifestyle"], strict=True)
    )
    launched = {sku for sku, life in target.items() if life}
    assert all(launch[sku] and launch[sku] > START for sku in launched)
    lifestyle = dict(zip(world.truth["customer_ref"], world.truth["lifestyle"], strict=True))
    bought: Counter[str | None] = Counter()
    lines: Counter[str | None] = Counter()
    sold = 0
    for sku, at, ref in zip(
        world.lines["sku"], world.lines["purchased_at"], world.buyer(), strict=True
    ):
        life = lifestyle.get(ref)
        lines[life] += 1
        if sku in launched:
            sold += 1
            assert date.fromisoformat(at[:10]) >= launch[sku], (sku, at)
            bought[life] += 1
    assert sold > 500
    share = {life: bought[life] / lines[life] for life in LIFESTYLES}
    for keen in ("young_urban", "gourmet", "health"):
        for slow in ("senior", "budget"):
            assert share[keen] > 2 * share[slow], (keen, slow, share)


def test_staples_are_rebought_at_regular_intervals(world: World) -> None:
    interval = {
        (ref, sku): days
        for ref, sku, days in zip(
            world.staples["customer_ref"],
            world.staples["sku"],
            world.staples["interval_days"],
            strict=True,
        )
    }
    times: dict[tuple[str, str], set[float]] = defaultdict(set)
    sales = np.array([r is None for r in world.lines["returns_receipt_id"]])
    for ref, sku, at in zip(
        world.buyer()[sales],
        world.lines["sku"][sales],
        world.lines["purchased_at"][sales],
        strict=True,
    ):
        if (ref, sku) in interval:
            times[(ref, sku)].add(datetime.fromisoformat(at).timestamp() / 86400)
    observed, expected = [], []
    for key, moments in times.items():
        if len(moments) >= 5:
            observed.append(np.median(np.diff(sorted(moments))))
            expected.append(interval[key])
    assert len(observed) > 300
    assert spearman(observed, expected) > 0.6
    assert 0.8 < np.median(np.array(observed) / np.array(expected)) < 2.0


def test_deal_hunters_buy_discounted_lines_far_more(world: World) -> None:
    index = {ref: i for i, ref in enumerate(world.truth["customer_ref"])}
    discounted = np.zeros(len(index))
    total = np.zeros(len(index))
    sales = np.array([r is None for r in world.lines["returns_receipt_id"]])
    for ref, discount in zip(world.buyer()[sales], world.lines["discount"][sales], strict=True):
        if ref in index:
            total[index[ref]] += 1
            discounted[index[ref]] += discount > 0
    enough = total >= 30
    sensitivity = np.array(world.truth["price_sensitivity"])[enough]
    share = discounted[enough] / total[enough]
    assert spearman(share, sensitivity) > 0.5
    hunters = sensitivity > 0.3
    assert share[hunters].mean() > 3 * share[~hunters].mean()


def test_members_favour_a_home_store_but_not_only_it(world: World) -> None:
    home = dict(zip(world.truth["customer_ref"], world.truth["home_store"], strict=True))
    first = (world.lines["line_no"] == 1) & (world.lines["source"] == "till")
    visits: dict[str, Counter[str]] = defaultdict(Counter)
    for ref, store in zip(world.buyer()[first], world.lines["store"][first], strict=True):
        if ref in home:
            visits[ref][store] += 1
    regular = {ref: c for ref, c in visits.items() if sum(c.values()) >= 10}
    at_home = np.array([c[home[ref]] / sum(c.values()) for ref, c in regular.items()])
    assert np.mean([c.most_common(1)[0][0] == home[ref] for ref, c in regular.items()]) > 0.9
    assert 0.6 < at_home.mean() < 0.95
    assert (at_home < 1).mean() > 0.5


def test_enrolled_members_first_buy_on_their_joining_day(world: World) -> None:
    joined = {
        ref: day
        for ref, day in zip(
            world.customers["customer_ref"], world.customers["relationship_start"], strict=True
        )
        if day >= START
    }
    first_seen: dict[str, date] = {}
    for ref, at in zip(world.buyer(), world.lines["purchased_at"], strict=True):
        day = date.fromisoformat(at[:10])
        if ref in joined and (ref not in first_seen or day < first_seen[ref]):
            first_seen[ref] = day
    assert len(joined) > 0.25 * len(world.customers["customer_ref"])
    assert all(first_seen[ref] == day for ref, day in joined.items())


# Memory and the command ------------------------------------------------------------------


def test_memory_stays_flat_as_customers_grow(tmp_path: Path) -> None:
    def peak(customers: int, chunk_size: int) -> int:
        """Peak bytes traced (NumPy's arrays among them) while simulating."""
        tracemalloc.start()
        try:
            simulate(
                customers, 3, 26, 3, tmp_path / f"{customers}-{chunk_size}", chunk_size=chunk_size
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one, four = peak(1000, 500), peak(4000, 500)
    assert four < 1.5 * one
    # The measurement sees the generator: one big chunk does take more.
    assert peak(4000, 4000) > 2 * four


def test_command_writes_the_files_and_refuses_bad_options(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("simulate")(simulate_command)
    app.callback()(lambda: None)
    runner = CliRunner()
    out = tmp_path / "files"
    result = runner.invoke(
        app,
        ["simulate", "--customers", "50", "--weeks", "2", "--out", str(out), "--format", "parquet"],
    )
    assert result.exit_code == 0, result.output
    assert "50 members" in result.output
    assert (out / "receipts.parquet").exists() and (out / "truth.parquet").exists()
    for bad in (["--customers", "0"], ["--weeks", "0"], ["--format", "xml"]):
        result = runner.invoke(app, ["simulate", *bad, "--out", str(tmp_path / "no")])
        assert result.exit_code == 2, bad
        assert "Invalid value" in result.output
    assert not (tmp_path / "no").exists()
