"""The customer value stage of `oppiva analyze`: models fitted on the driver, one card per
customer.

From the features the engine computed (purchase days, first and last day, the first day's
spend), each customer's history (x, t_x, T in weeks, mean repeat spend m) goes to NumPy; a
BG/NBD and a Gamma-Gamma model are fitted on the unique histories (`compress`), then every
customer gets P(alive), the expected purchases in 52 weeks, the expected spend per purchase and
the margin-based CLV of the next 12 months. The indicators that need the operational store
(what is known of the customer, the dialogue, referrals) come from one set-based query read with
the rest of the store (`register_query`); share of wallet needs the lifestyle clusters, so the
cards are assembled in DuckDB after them (`card_writes`). See docs/value.md.
"""

# SQL assembled from the module's own constants and dates; no data travels in it.
# ruff: noqa: S608

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oppiva.analytics.transfer import Query, Write
from oppiva.config import Settings
from oppiva.value.bgnbd import BGNBD
from oppiva.value.clv import customer_lifetime_value, new_customer_value
from oppiva.value.fitting import Fit, FloatArray
from oppiva.value.gamma_gamma import GammaGamma
from oppiva.value.pareto import ParetoNBD

WEEK = 7.0
HORIZON_WEEKS = 52.0
CLV_MONTHS = 12
MIN_REPEATERS = 20  # fewer repeat customers than this: no model, no cards
SCORES = "value_scores.parquet"
MODELS = "value_model.parquet"
# Share of wallet: customers of a lifestyle cluster and visit band; groups smaller than this
# borrow the band's potential, then everyone's.
WALLET_GROUP = 20
WALLET_QUANTILE = 0.9
REFERRAL = "referral"  # the timeline's object_type of a recorded referral
FEEDBACK = ("feedback", "complaint")  # the timeline's object_types of feedback


class NoModel(Exception):
    """The histories cannot carry a model (too few repeat customers, no convergence)."""


@dataclass(frozen=True, slots=True)
class Histories:
    """Each customer's purchase history in weeks, purchases counted per day."""

    customer_id: npt.NDArray[np.int64]
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    m: FloatArray  # mean repeat spend, nan when x = 0
    margin: FloatArray  # the 365-day margin rate, nan when unknown

    def __len__(self) -> int:
        return len(self.x)


@dataclass(slots=True)
class Stage:
    """What the stage found: the scores file (None when skipped) and the report's note."""

    scores: Path | None
    summary: dict[str, Any] = field(default_factory=dict)


def histories(table: pa.Table, as_of: date) -> Histories:
    """The histories from the features' `first_day`, `last_day` (day numbers), `value_days`,
    `spend_total`, `value_first_spend` and `margin_rate_365d` columns."""
    table = table.filter(pc.is_valid(table.column("first_day")))

    def column(name: str) -> FloatArray:
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)

    end = float((as_of - date(1970, 1, 1)).days)
    first, last = column("first_day"), column("last_day")
    x = np.maximum(column("value_days") - 1, 0)
    repeat = column("spend_total") - column("value_first_spend")
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(x > 0, repeat / x, np.nan)
    margin = np.asarray(table.column("margin_rate_365d").to_numpy(zero_copy_only=False), float)
    return Histories(
        customer_id=np.asarray(table.column("customer_id").to_numpy(), dtype=np.int64),
        x=x,
        t_x=(last - first) / WEEK,
        T=(end - first) / WEEK,
        m=m,
        margin=margin,
    )


def fit_purchases(h: Histories, name: str = "bgnbd") -> BGNBD | ParetoNBD:
    """The purchase model fitted on the histories (BG/NBD, or Pareto/NBD for `pareto`)."""
    repeaters = int(np.count_nonzero(h.x > 0))
    if repeaters < MIN_REPEATERS:
        raise NoModel(f"too few repeat customers to fit a model ({repeaters} < {MIN_REPEATERS})")
    kind = ParetoNBD if name == "pareto" else BGNBD
    try:
        model = kind.fitted(h.x, h.t_x, h.T)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        raise NoModel(f"the {name} fit failed: {exc}") from None
    if model.fit is None or not np.all(np.isfinite(model.params)):
        raise NoModel(f"the {name} fit did not give finite parameters")
    return model


def fit_spend(h: Histories) -> GammaGamma:
    """The Gamma-Gamma spend model on the repeat customers with a positive mean spend."""
    usable = (h.x > 0) & (np.nan_to_num(h.m) > 0)
    if int(np.count_nonzero(usable)) < MIN_REPEATERS:
        raise NoModel("too few repeat customers with a positive spend to fit the spend model")
    try:
        model = GammaGamma.fitted(h.x[usable], h.m[usable])
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        raise NoModel(f"the spend fit failed: {exc}") from None
    if not np.isfinite(model.mean_spend) or model.mean_spend <= 0:
        raise NoModel("the spend model has no finite mean (q <= 1)")
    return model


def expected_spend(h: Histories, spend: GammaGamma) -> FloatArray:
    """E[spend per purchase]: the customer's mean shrunk to the population's; a customer
    without a positive repeat spend gets the population mean."""
    usable = (h.x > 0) & (np.nan_to_num(h.m) > 0)
    return spend.expected_spend(np.where(usable, h.x, 0.0), np.where(usable, h.m, 0.0))


def score(
    h: Histories, purchases: BGNBD | ParetoNBD, spend: GammaGamma, settings: Settings
) -> pa.Table:
    """Every customer's P(alive), expected purchases in 52 weeks, expected spend and CLV."""
    margin = np.where(np.isfinite(h.margin), h.margin, settings.default_margin)
    per_purchase = expected_spend(h, spend)
    clv = customer_lifetime_value(
        purchases,
        h.x,
        h.t_x,
        h.T,
        per_purchase,
        periods=CLV_MONTHS,
        discount_rate=settings.discount_rate,
        margin=1.0,
    )
    return pa.table(
        {
            "customer_id": pa.array(h.customer_id, pa.int64()),
            "frequency": pa.array(h.x.astype(np.int64)),
            "recency_weeks": pa.array(h.t_x),
            "age_weeks": pa.array(h.T),
            "mean_repeat_spend": pa.array(h.m, from_pandas=True),
            "p_alive": pa.array(np.clip(purchases.p_alive(h.x, h.t_x, h.T), 0.0, 1.0)),
            "expected_purchases_52w": pa.array(
                purchases.expected_purchases(HORIZON_WEEKS, h.x, h.t_x, h.T)
            ),
            "expected_spend": pa.array(per_purchase),
            "margin_rate": pa.array(margin),
            "clv": pa.array(clv * margin),
        }
    )


def newcomer_value(purchases: BGNBD | ParetoNBD, spend: GammaGamma, settings: Settings) -> float:
    """The discounted 12-month value of a customer just acquired, beyond the first purchase."""
    return new_customer_value(
        purchases,
        spend.mean_spend,
        periods=CLV_MONTHS,
        discount_rate=settings.discount_rate,
        margin=settings.default_margin,
    )


def parameters(fit: Fit) -> dict[str, dict[str, float]]:
    """The estimates with standard errors and 95 % intervals, by parameter name."""
    return {
        str(row["parameter"]): {k: float(row[k]) for k in ("estimate", "std_error", "low", "high")}
        for row in fit.table(0.95)
    }


def model_row(
    name: str,
    fit: Fit,
    as_of: date,
    settings: Settings,
    new_value: float | None = None,
) -> dict[str, Any]:
    """A `value_model` row."""
    return {
        "as_of": as_of,
        "model": name,
        "parameters": json.dumps(parameters(fit)),
        "log_likelihood": fit.log_likelihood,
        "customers": int(fit.customers),
        "converged": fit.converged,
        "new_customer_value": new_value,
        "detail": json.dumps(
            {
                "time_unit": "week",
                "rows": fit.rows,
                "iterations": fit.iterations,
                "horizon_months": CLV_MONTHS,
                "discount_rate": settings.discount_rate,
                "default_margin": settings.default_margin,
            }
        ),
    }


MODEL_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("model", pa.string()),
        ("parameters", pa.string()),
        ("log_likelihood", pa.float64()),
        ("customers", pa.int64()),
        ("converged", pa.bool_()),
        ("new_customer_value", pa.float64()),
        ("detail", pa.string()),
    ]
)


def run(features: Path, folder: Path, as_of: date, settings: Settings) -> Stage:
    """Fit the models on the features' histories and score every customer, or say why not."""
    columns = [
        "customer_id",
        "first_day",
        "last_day",
        "value_days",
        "spend_total",
        "value_first_spend",
        "margin_rate_365d",
    ]
    h = histories(pq.read_table(features, columns=columns), as_of)
    try:
        purchases = fit_purchases(h)
        spend = fit_spend(h)
    except NoModel as exc:
        return Stage(None, {"skipped": str(exc), "customers": len(h)})
    new_value = newcomer_value(purchases, spend, settings)
    assert purchases.fit is not None
    assert spend.fit is not None
    rows = [
        model_row("bgnbd", purchases.fit, as_of, settings, new_value),
        model_row("gg", spend.fit, as_of, settings),
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=MODEL_SCHEMA), folder / MODELS)
    scores = folder / SCORES
    table = score(h, purchases, spend, settings)
    pq.write_table(table, scores)
    return Stage(
        scores,
        {
            "customers": len(h),
            "repeat_customers": int(np.count_nonzero(h.x > 0)),
            "new_customer_value": round(new_value, 2),
            "clv_total": round(float(pc.sum(table.column("clv")).as_py() or 0.0), 2),
        },
    )


def register_query(as_of: date) -> Query:
    """Per customer, what the register knows of them and their dialogue up to `as_of`: one
    set-based query over the operational store (SQLite and PostgreSQL alike)."""
    end = (as_of + timedelta(days=1)).isoformat()
    start = (as_of - timedelta(days=364)).isoformat()
    window = f"occurred_at >= '{start} 00:00:00' AND occurred_at < '{end} 00:00:00'"
    feedback = ", ".join(f"'{k}'" for k in FEEDBACK)
    sql = f"""
        SELECT c.id AS customer_id,
               CASE WHEN c.birthday IS NULL THEN 0 ELSE 1 END AS birthday,
               CASE WHEN a.n IS NULL THEN 0 ELSE 1 END AS address,
               coalesce(i.emails, 0) AS emails,
               coalesce(i.phones, 0) AS phones,
               coalesce(ce.purposes, 0) AS purposes,
               coalesce(pe.n, 0) AS preferences,
               coalesce(x.inbound, 0) AS inbound,
               coalesce(x.feedback, 0) AS feedback,
               coalesce(x.referrals, 0) AS referrals
        FROM customer c
        LEFT JOIN (SELECT customer_id, count(*) AS n FROM address GROUP BY customer_id) a
            ON a.customer_id = c.id
        LEFT JOIN (
            SELECT customer_id,
                   sum(CASE WHEN kind = 'email' THEN 1 ELSE 0 END) AS emails,
                   sum(CASE WHEN kind = 'phone' THEN 1 ELSE 0 END) AS phones
            FROM identity GROUP BY customer_id
        ) i ON i.customer_id = c.id
        LEFT JOIN (
            SELECT customer_id, count(DISTINCT purpose) AS purposes
            FROM consent_event GROUP BY customer_id
        ) ce ON ce.customer_id = c.id
        LEFT JOIN (
            SELECT customer_id, count(*) AS n FROM preference_event GROUP BY customer_id
        ) pe ON pe.customer_id = c.id
        LEFT JOIN (
            SELECT customer_id,
                   sum(CASE WHEN direction = 'inbound' AND {window} THEN 1 ELSE 0 END) AS inbound,
                   sum(CASE WHEN object_type IN ({feedback}) AND {window} THEN 1 ELSE 0 END)
                       AS feedback,
                   sum(CASE WHEN object_type = '{REFERRAL}' AND occurred_at < '{end} 00:00:00'
                       THEN 1 ELSE 0 END) AS referrals
            FROM interaction GROUP BY customer_id
        ) x ON x.customer_id = c.id
        WHERE c.merged_into_id IS NULL AND c.erased_at IS NULL
    """
    names = (
        "customer_id",
        "birthday",
        "address",
        "emails",
        "phones",
        "purposes",
        "preferences",
        "inbound",
        "feedback",
        "referrals",
    )
    return Query("value_register", sql, types=dict.fromkeys(names, pa.int64()))


# The indicators' formulas (docs/value.md): knowledge of preferences is the mean of seven
# items; engagement in dialogue saturates, 1 - exp(-(inbound + 2 feedback) / 3).
PREFERENCE_ITEMS = (
    "r.birthday",
    "r.address",
    "least(r.emails, 1)",
    "least(r.phones, 1)",
    "least(r.purposes, 3) / 3.0",
    "least(r.preferences, 1)",
    "CASE WHEN s.frequency >= 2 THEN 1 ELSE 0 END",
)
ENGAGEMENT = "1 - exp(-(r.inbound + 2 * r.feedback) / 3.0)"


def card_writes(folder: Path, register: Path, features: Path, as_of: date) -> list[Write]:
    """The `customer_value` and `value_model` rows of this run: the scores joined with the
    register's indicators and share of wallet (the features with their lifestyle clusters)."""
    day = as_of.isoformat()
    clear = [
        Write("customer_value", None, before=["DELETE FROM customer_value"]),
        Write("value_model", None, before=[f"DELETE FROM value_model WHERE as_of = '{day}'"]),
    ]
    scores = folder / SCORES
    if not scores.exists():
        return clear
    cards = folder / "customer_value.parquet"
    knowledge = " + ".join(f"coalesce({item}, 0)" for item in PREFERENCE_ITEMS)
    band = (
        "CASE WHEN visits_365d >= 52 THEN 4 WHEN visits_365d >= 12 THEN 3 "
        "WHEN visits_365d >= 4 THEN 2 ELSE 1 END"
    )
    db = duckdb.connect()
    db.execute(
        f"""CREATE TABLE spend AS
            SELECT customer_id, spend_365d, lifestyle_cluster AS cluster, {band} AS band
            FROM read_parquet('{features}') WHERE visits_365d > 0"""
    )
    db.execute(
        f"""CREATE TABLE potential AS
            WITH g AS (
                SELECT cluster, band, count(*) AS n,
                       quantile_cont(spend_365d, {WALLET_QUANTILE}) AS p FROM spend GROUP BY 1, 2
            ), b AS (
                SELECT band, count(*) AS n,
                       quantile_cont(spend_365d, {WALLET_QUANTILE}) AS p FROM spend GROUP BY 1
            ), a AS (SELECT quantile_cont(spend_365d, {WALLET_QUANTILE}) AS p FROM spend)
            SELECT s.customer_id, s.spend_365d,
                   CASE WHEN g.n >= {WALLET_GROUP} THEN g.p
                        WHEN b.n >= {WALLET_GROUP} THEN b.p ELSE a.p END AS potential
            FROM spend s
            LEFT JOIN g ON g.cluster IS NOT DISTINCT FROM s.cluster AND g.band = s.band
            LEFT JOIN b ON b.band = s.band CROSS JOIN a"""
    )
    db.execute(
        f"""COPY (
            SELECT s.customer_id, DATE '{day}' AS as_of,
                   s.frequency, s.recency_weeks, s.age_weeks,
                   s.mean_repeat_spend,
                   s.p_alive, s.expected_purchases_52w, s.expected_spend, s.margin_rate, s.clv,
                   CASE WHEN p.potential > 0
                        THEN least(greatest(p.spend_365d, 0) / p.potential, 1.0) END
                       AS share_of_wallet,
                   ({knowledge}) / {len(PREFERENCE_ITEMS)}.0 AS preference_knowledge,
                   coalesce({ENGAGEMENT}, 0.0) AS dialogue_engagement,
                   coalesce(r.referrals, 0) AS referrals
            FROM read_parquet('{scores}') s
            JOIN read_parquet('{register}') r USING (customer_id)
            LEFT JOIN potential p USING (customer_id)
            ORDER BY s.customer_id
        ) TO '{cards}' (FORMAT parquet)"""
    )
    db.close()
    return [
        Write("customer_value", cards, before=["DELETE FROM customer_value"]),
        Write(
            "value_model",
            folder / MODELS,
            before=[f"DELETE FROM value_model WHERE as_of = '{day}'"],
        ),
    ]
