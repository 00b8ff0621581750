"""Customer value in the store: each customer's value card, the fitted models, and a fit on
demand from the latest analysis's histories.

Services never commit: the adapter owns the transaction. The cards and the models themselves
are written by `oppiva analyze` (`oppiva.value.stage`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from oppiva.config import Settings
from oppiva.errors import InvalidInput, NotFound
from oppiva.value import stage
from oppiva.value.models import CustomerValue, ValueModel

MODELS = ("bgnbd", "pareto", "gg")
MODEL_NAMES = {
    "bgnbd": "BG/NBD (purchases)",
    "pareto": "Pareto/NBD (purchases)",
    "gg": "Gamma-Gamma (spend per purchase)",
}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def card(session: Session, customer_id: int) -> dict[str, Any] | None:
    """The customer's value card from the latest analysis, or None before any analysis
    valued them: the six relationship-value indicators, each with what it rests on."""
    row = session.get(CustomerValue, customer_id)
    if row is None:
        return None
    newcomer = session.scalar(
        select(ValueModel.new_customer_value).where(
            ValueModel.as_of == row.as_of, ValueModel.model == "bgnbd"
        )
    )
    return {
        "as_of": row.as_of,
        "repeat_purchases_and_retention": {
            "repeat_purchases": row.frequency,
            "p_alive": _round(row.p_alive),
            "expected_purchases_52w": _round(row.expected_purchases_52w, 3),
            "recency_weeks": _round(row.recency_weeks, 2),
            "age_weeks": _round(row.age_weeks, 2),
        },
        "share_of_wallet": _round(row.share_of_wallet),
        "profitability": {
            "clv_12m": _round(row.clv, 2),
            "expected_spend": _round(row.expected_spend, 2),
            "mean_repeat_spend": _round(row.mean_repeat_spend, 2),
            "margin_rate": _round(row.margin_rate),
        },
        "preference_knowledge": _round(row.preference_knowledge),
        "dialogue_engagement": _round(row.dialogue_engagement),
        "referral_value": {
            "referrals": row.referrals,
            "value": None if newcomer is None else round(row.referrals * newcomer, 2),
        },
    }


def get_card(session: Session, customer_id: int) -> dict[str, Any]:
    found = card(session, customer_id)
    if found is None:
        raise NotFound(f"no value card for customer {customer_id}: run `oppiva analyze` first")
    return found


def model_out(row: ValueModel) -> dict[str, Any]:
    """A stored model as JSON-ready data."""
    return {
        "as_of": row.as_of,
        "model": row.model,
        "name": MODEL_NAMES.get(row.model, row.model),
        "parameters": row.parameters,
        "log_likelihood": row.log_likelihood,
        "customers": row.customers,
        "converged": row.converged,
        "new_customer_value": _round(row.new_customer_value, 2),
        "detail": row.detail,
    }


def list_models(
    session: Session, *, as_of: date | None = None, limit: int = 50
) -> Sequence[ValueModel]:
    """The fitted models, newest first (those of one analysis date with `as_of`)."""
    query = select(ValueModel).order_by(ValueModel.as_of.desc(), ValueModel.model)
    if as_of is not None:
        query = query.where(ValueModel.as_of == as_of)
    return session.scalars(query.limit(limit)).all()


def top_customers(
    session: Session, *, order: str = "clv", limit: int = 20
) -> Sequence[CustomerValue]:
    """The valued customers, highest `order` (clv, p_alive, expected_purchases_52w) first."""
    columns = {
        "clv": CustomerValue.clv,
        "p_alive": CustomerValue.p_alive,
        "expected_purchases_52w": CustomerValue.expected_purchases_52w,
    }
    if order not in columns:
        raise InvalidInput("order", f"one of {', '.join(columns)}")
    return session.scalars(
        select(CustomerValue)
        .order_by(columns[order].desc(), CustomerValue.customer_id)
        .limit(limit)
    ).all()


def latest_histories(session: Session) -> tuple[date, stage.Histories]:
    """The histories the latest analysis valued, as the stage saw them."""
    as_of = session.scalar(select(func.max(CustomerValue.as_of)))
    if as_of is None:
        raise NotFound(
            "no customer histories: run `oppiva analyze` (with at least "
            f"{stage.MIN_REPEATERS} repeat customers) first"
        )
    rows = session.execute(
        select(
            CustomerValue.customer_id,
            CustomerValue.frequency,
            CustomerValue.recency_weeks,
            CustomerValue.age_weeks,
            CustomerValue.mean_repeat_spend,
            CustomerValue.margin_rate,
        ).order_by(CustomerValue.customer_id)
    ).all()
    columns = list(zip(*rows, strict=True))
    floats = [np.asarray(c, dtype=np.float64) for c in columns[1:]]
    return as_of, stage.Histories(
        customer_id=np.asarray(columns[0], dtype=np.int64),
        x=floats[0],
        t_x=floats[1],
        T=floats[2],
        m=floats[3],  # None reads as nan
        margin=floats[4],
    )


def fit(session: Session, model: str, settings: Settings) -> ValueModel:
    """Fit `model` (bgnbd, pareto or gg) on the latest analysis's histories and store it,
    replacing a fit of the same model and date."""
    if model not in MODELS:
        raise InvalidInput("model", f"one of {', '.join(MODELS)}")
    as_of, histories = latest_histories(session)
    try:
        spend = stage.fit_spend(histories)
        if model == "gg":
            assert spend.fit is not None
            row = stage.model_row("gg", spend.fit, as_of, settings)
        else:
            purchases = stage.fit_purchases(histories, model)
            assert purchases.fit is not None
            value = stage.newcomer_value(purchases, spend, settings)
            row = stage.model_row(model, purchases.fit, as_of, settings, value)
    except stage.NoModel as exc:
        raise InvalidInput("model", str(exc)) from None
    session.execute(delete(ValueModel).where(ValueModel.as_of == as_of, ValueModel.model == model))
    stored = ValueModel(
        **{
            **row,
            "parameters": json.loads(row["parameters"]),
            "detail": json.loads(row["detail"]),
        }
    )
    session.add(stored)
    session.flush()
    return stored
