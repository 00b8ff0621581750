"""`oppiva value ...`: the fitted models, a fit on demand, customers' value cards."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from oppiva.cli.common import (
    audit,
    console,
    day_option,
    fail,
    open_store,
    print_json,
    unit_of_work,
)
from oppiva.config import get_settings
from oppiva.customers.service import get_customer
from oppiva.errors import OppivaError
from oppiva.value import service

app = typer.Typer(
    help="Customer value: lifetime value models and each customer's value card.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_model(model: dict[str, Any]) -> None:
    table = Table(
        "parameter",
        "estimate",
        "std. error",
        "95 % low",
        "95 % high",
        title=f"{model['name']} as of {model['as_of']}",
    )
    for name, p in model["parameters"].items():
        table.add_row(name, *(f"{p[k]:.4g}" for k in ("estimate", "std_error", "low", "high")))
    console.print(table)
    line = f"log-likelihood {model['log_likelihood']:.2f} over {model['customers']:,} customers"
    if not model["converged"]:
        line += " (did not converge)"
    if model["new_customer_value"] is not None:
        line += f"; a new customer's potential value {model['new_customer_value']:.2f}"
    console.print(line, markup=False)


@app.command()
def fit(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="bgnbd, pareto or gg (spend).")] = "bgnbd",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Run the analysis for this date first (YYYY-MM-DD)."),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Fit a model on the latest analysis's purchase histories (or run the analysis for
    --as-of first), store it, and print the parameters with their intervals."""
    day = day_option(as_of, "--as-of")
    if model not in service.MODELS:
        raise fail(f"--model {model!r}: one of {', '.join(service.MODELS)}")
    if day is not None:
        from oppiva.analytics.analysis import analyze

        store = open_store(ctx)
        url = store.engine.url.render_as_string(hide_password=False)
        store.dispose()
        try:
            analyze(url, as_of=day)
        except OppivaError as exc:
            raise fail(str(exc)) from None
    with unit_of_work(ctx) as session:
        data = service.model_out(service.fit(session, model, get_settings()))
        audit(session, "value model fitted", model=model, as_of=data["as_of"].isoformat())
    if json:
        print_json(data)
        return
    _print_model(data)


@app.command()
def models(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Only this analysis date.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    json: JsonFlag = False,
) -> None:
    """The stored models, newest first: parameters with standard errors and 95 % intervals."""
    day = day_option(as_of, "--as-of")
    with unit_of_work(ctx) as session:
        data = [service.model_out(r) for r in service.list_models(session, as_of=day, limit=limit)]
    if json:
        print_json(data)
        return
    if not data:
        console.print("No value models yet: run `oppiva analyze`.", markup=False)
    for model in data:
        _print_model(model)


@app.command()
def score(
    ctx: typer.Context,
    order: Annotated[str, typer.Option(help="clv, p_alive or expected_purchases_52w.")] = "clv",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    json: JsonFlag = False,
) -> None:
    """The most valuable customers of the latest analysis (by CLV, or P(alive), or the
    expected purchases in 52 weeks)."""
    with unit_of_work(ctx) as session:
        rows = service.top_customers(session, order=order, limit=limit)
        data = [
            {
                "customer_id": r.customer_id,
                "clv": round(r.clv, 2),
                "p_alive": round(r.p_alive, 4),
                "expected_purchases_52w": round(r.expected_purchases_52w, 3),
                "expected_spend": round(r.expected_spend, 2),
                "repeat_purchases": r.frequency,
            }
            for r in rows
        ]
        audit(session, "value scores", [r.customer_id for r in rows] or [None], order=order)
    if json:
        print_json(data)
        return
    table = Table("customer", "CLV 12 m", "P(alive)", "purchases 52 w", "spend", "repeats")
    for row in data:
        table.add_row(
            str(row["customer_id"]),
            f"{row['clv']:,.2f}",
            f"{row['p_alive']:.3f}",
            f"{row['expected_purchases_52w']:.2f}",
            f"{row['expected_spend']:.2f}",
            str(row["repeat_purchases"]),
        )
    console.print(table)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


@app.command()
def show(
    ctx: typer.Context,
    customer_id: Annotated[int, typer.Argument(help="The customer's id.")],
    json: JsonFlag = False,
) -> None:
    """A customer's value card: the six relationship-value indicators."""
    with unit_of_work(ctx) as session:
        get_customer(session, customer_id)
        card = service.get_card(session, customer_id)
        audit(session, "customer value", [customer_id])
    if json:
        print_json(card)
        return
    retention, profit = card["repeat_purchases_and_retention"], card["profitability"]
    referral = card["referral_value"]
    table = Table("indicator", "value", title=f"customer {customer_id}, as of {card['as_of']}")
    table.add_row(
        "repeat purchases and retention",
        f"{retention['repeat_purchases']} repeat purchases; P(alive) "
        f"{retention['p_alive']:.2f}; {retention['expected_purchases_52w']:.1f} purchases "
        "expected in 52 weeks",
    )
    table.add_row("share of wallet", _percent(card["share_of_wallet"]))
    table.add_row(
        "profitability",
        f"CLV {profit['clv_12m']:,.2f} over 12 months (margin {_percent(profit['margin_rate'])}, "
        f"{profit['expected_spend']:.2f} a purchase)",
    )
    table.add_row("knowledge of preferences", _percent(card["preference_knowledge"]))
    table.add_row("engagement in dialogue", _percent(card["dialogue_engagement"]))
    worth = "" if referral["value"] is None else f", worth {referral['value']:,.2f}"
    table.add_row("referral value", f"{referral['referrals']} referrals{worth}")
    console.print(table)
