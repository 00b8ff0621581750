"""`oppiva offers ...`: train the recommenders, evaluate them, run campaigns, read offers."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oppiva.analytics import EngineKind
from oppiva.cli.common import (
    audit,
    console,
    day_option,
    fail,
    moment_option,
    open_store,
    print_json,
    unit_of_work,
)
from oppiva.config import get_settings
from oppiva.errors import OppivaError
from oppiva.offers import batch, campaigns, choices, coupons, evaluate, relevance, till
from oppiva.offers.campaigns import CampaignDefinition
from oppiva.offers.schemas import CampaignOut, ReportOut, RunOut

app = typer.Typer(
    help="Personal offers: recommenders, coupon campaigns, till offers and chosen offers.",
    no_args_is_help=True,
)


# --- candidates and evaluation ---


@app.command("train")
def train_command(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Score as of this date, YYYY-MM-DD (default today)."),
    ] = None,
    engine: Annotated[
        EngineKind, typer.Option(help="duckdb: ALS with implicit here; spark: ALS on Spark MLlib.")
    ] = EngineKind.DUCKDB,
    master: Annotated[
        str | None, typer.Option(help="Spark master URL (with --engine spark).")
    ] = None,
    known: Annotated[int, typer.Option(min=1, max=200, help="Known candidates per customer.")] = 20,
    new: Annotated[int, typer.Option(min=0, max=200, help="New candidates per customer.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Fit the recommenders on the purchase history and replace the offer candidates."""
    day = day_option(as_of, "--as-of")
    store = open_store(ctx)
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=json,
    ) as bar:
        task = bar.add_task("offers", total=len(batch.STAGES))

        def step(stage: str) -> None:
            bar.update(task, description=stage, completed=batch.STAGES.index(stage))

        try:
            report = batch.train(
                url, as_of=day, engine=engine, master=master, known=known, new=new, progress=step
            )
        except OppivaError as exc:
            raise fail(str(exc)) from None
        bar.update(task, description="done", completed=len(batch.STAGES))
    with unit_of_work(ctx) as session:
        audit(session, "offers.train", as_of=report.as_of.isoformat(), engine=report.engine)
    if json:
        print_json(asdict(report))
        return
    console.print(
        f"Scored {report.customers:,} customers and {report.products:,} products as of "
        f"{report.as_of} on {report.engine} in {report.seconds:.1f} s: {report.known:,} known "
        f"and {report.new:,} new candidates ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(report.recommenders.items()))
        + f"); {report.neighbours:,} product neighbours for the till.",
        markup=False,
    )


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    train_until: Annotated[
        str, typer.Option("--train-until", help="Last day of the training history, YYYY-MM-DD.")
    ],
    test_weeks: Annotated[int, typer.Option(min=1, max=52, help="Weeks tested after it.")] = 4,
    engine: Annotated[
        EngineKind, typer.Option(help="duckdb or spark (for ALS).")
    ] = EngineKind.DUCKDB,
    write: Annotated[
        Path | None, typer.Option("--write", help="Also write the results as Markdown here.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Hit rate, precision and recall at 6 of oppiva's coupons against popularity and repeat."""
    day = day_option(train_until, "--train-until")
    assert day is not None
    store = open_store(ctx)
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()
    try:
        result = evaluate.evaluate_store(url, day, test_weeks, str(engine), get_settings().timezone)
    except OppivaError as exc:
        raise fail(str(exc)) from None
    if write is not None:
        write.write_text(evaluate.markdown(result), encoding="utf-8")
    if json:
        print_json(
            {
                "train_until": day,
                "test_weeks": test_weeks,
                "customers": result.customers,
                "sets": [asdict(m) for m in result.sets],
                "new_hit_rate": result.new_hit_rate,
                "new_popular_hit_rate": result.new_popular_hit_rate,
            }
        )
        return
    table = Table("coupon set", "k", "hit rate@k", "precision@k", "recall@k")
    for m in result.sets:
        table.add_row(
            m.name, str(m.k), f"{m.hit_rate:.3f}", f"{m.precision:.3f}", f"{m.recall:.3f}"
        )
    table.add_row("new-product coupons", "2", f"{result.new_hit_rate:.3f}", "", "")
    table.add_row("popularity among new", "2", f"{result.new_popular_hit_rate:.3f}", "", "")
    console.print(
        f"Trained up to {day}, tested on {test_weeks} weeks: {result.customers:,} customers.",
        markup=False,
    )
    console.print(table)


@app.command("candidates")
def candidates_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    kind: Annotated[str | None, typer.Option(help="known or new (default both).")] = None,
    language: Annotated[str, typer.Option(help="Explanations in en or fi.")] = "en",
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A customer's offer candidates from the latest batch, with the explanation."""
    with unit_of_work(ctx) as session:
        rows = batch.customer_candidates(session, customer, kind, language)
        audit(session, "offers.candidates.read", [customer], kind=kind)
    if json:
        print_json([asdict(r) for r in rows])
        return
    table = Table("kind", "rank", "product", "recommender", "score", "due on", "why")
    for r in rows:
        table.add_row(
            r.kind,
            str(r.rank),
            f"{r.sku} {r.product_name}",
            r.recommender,
            f"{r.score:.3f}",
            str(r.due_on or ""),
            r.explanation,
        )
    console.print(table)


# --- campaigns, coupons and their lifecycle ---

campaign_app = typer.Typer(
    help="Coupon campaigns: define, run (allocate coupons), report.", no_args_is_help=True
)
app.add_typer(campaign_app, name="campaign")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CampaignKey = Annotated[str, typer.Argument(help="The campaign's key.")]


def _counts(option: str, pairs: list[str]) -> dict[str, int]:
    """SKU=N pairs of a repeated option."""
    result: dict[str, int] = {}
    for pair in pairs:
        sku, _, n = pair.partition("=")
        if not sku or not n.strip().isdigit():
            raise fail(f"{option} {pair!r}: write SKU=N with N a whole number")
        result[sku.strip()] = int(n)
    return result


@campaign_app.command("create")
def campaign_create(
    ctx: typer.Context,
    key: CampaignKey,
    name: Annotated[str, typer.Argument(help="The campaign's name.")],
    valid_from: Annotated[str, typer.Option(help="First valid day, YYYY-MM-DD.")],
    valid_until: Annotated[str, typer.Option(help="Last valid day, YYYY-MM-DD.")],
    channel: Annotated[str, typer.Option(help="email, sms, post, phone or push.")] = "email",
    known: Annotated[int, typer.Option(help="Coupons per customer for known products.")] = 4,
    new: Annotated[int, typer.Option(help="Coupons per customer for new products.")] = 2,
    discount: Annotated[int, typer.Option(help="Discount in percent.")] = 20,
    expected_redemption: Annotated[
        float, typer.Option(help="Share of coupons expected to be used (cost estimate).")
    ] = 1.0,
    budget_eur: Annotated[str | None, typer.Option(help="Budget in euros.")] = None,
    max_per_group: Annotated[
        int | None, typer.Option(help="At most this many coupons per product group.")
    ] = None,
    product_limit: Annotated[
        list[str] | None, typer.Option(help="SKU=N: at most N coupons of the product.")
    ] = None,
    stock: Annotated[list[str] | None, typer.Option(help="SKU=N: N units in stock.")] = None,
    supplier_funded: Annotated[
        list[str] | None, typer.Option(help="SKU whose discount the supplier pays.")
    ] = None,
    holdout: Annotated[float, typer.Option(help="Share of customers held out.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the holdout draw.")] = 0,
    segment: Annotated[str | None, typer.Option(help="Only this saved segment.")] = None,
    criteria: Annotated[
        str | None,
        typer.Option(
            help="Only the customers this criteria expression picks in the latest analysis, "
            "e.g. 'visits_365d >= 20 and avg_basket_365d > 50'."
        ),
    ] = None,
    offers_shown: Annotated[int, typer.Option(help="Offers shown to choose from.")] = 15,
    picks: Annotated[int, typer.Option(help="Offers a customer may pick.")] = 5,
) -> None:
    """Define a coupon campaign."""
    first, last = day_option(valid_from, "--valid-from"), day_option(valid_until, "--valid-until")
    if first is None or last is None:
        raise fail("--valid-from, --valid-until: give both days, YYYY-MM-DD")
    try:
        budget = None if budget_eur is None else Decimal(budget_eur)
    except InvalidOperation:
        raise fail(f"--budget-eur {budget_eur!r}: write an amount such as 1500.00") from None
    definition = CampaignDefinition(
        key=key,
        name=name,
        channel=channel,
        valid_from=first,
        valid_until=last,
        known_per_customer=known,
        new_per_customer=new,
        discount_percent=discount,
        expected_redemption=expected_redemption,
        budget_eur=budget,
        max_per_group=max_per_group,
        product_limits=_counts("--product-limit", product_limit or []),
        stock=_counts("--stock", stock or []),
        supplier_funded=supplier_funded or [],
        holdout_share=holdout,
        holdout_seed=seed,
        segment_key=segment,
        audience_criteria=criteria,
        offers_shown=offers_shown,
        picks=picks,
    )
    with unit_of_work(ctx) as session:
        campaign = campaigns.create_campaign(session, definition)
        audit(session, "offers.campaign.create", key=campaign.key)
    console.print(f"Campaign {key} created.", markup=False)


@campaign_app.command("list")
def campaign_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Every campaign with its number of coupons."""
    with unit_of_work(ctx) as session:
        data = [
            CampaignOut.of(c, n).model_dump(mode="json")
            for c, n in campaigns.list_campaigns(session)
        ]
    if json:
        print_json(data)
        return
    table = Table("key", "name", "channel", "valid", "coupons", "holdout")
    for row in data:
        table.add_row(
            row["key"],
            row["name"],
            row["channel"],
            f"{row['valid_from']} .. {row['valid_until']}",
            f"{row['coupons']:,}",
            f"{row['holdout_share']:.0%}",
        )
    console.print(table)


@campaign_app.command("run")
def campaign_run(ctx: typer.Context, key: CampaignKey, json: JsonFlag = False) -> None:
    """Allocate coupons from the latest candidates; a repeat adds nothing."""
    with unit_of_work(ctx) as session:
        summary = campaigns.run_campaign(session, key)
        audit(session, "offers.campaign.run", key=key, coupons=summary.coupons)
    data = RunOut.model_validate(asdict(summary)).model_dump(mode="json")
    if json:
        print_json(data)
        return
    console.print(
        f"Campaign {key}: {summary.coupons:,} coupons to {summary.treatment:,} customers, "
        f"{summary.holdout:,} held out, {summary.already_in_campaign:,} already in it; "
        f"expected cost {summary.expected_cost_eur} EUR.",
        markup=False,
    )
    table = Table("refused because", "count")
    for reason, n in summary.refused.items():
        table.add_row(reason, f"{n:,}")
    console.print(table)


@campaign_app.command("report")
def campaign_report(
    ctx: typer.Context,
    key: CampaignKey,
    on: Annotated[str | None, typer.Option(help="Report up to this day, YYYY-MM-DD.")] = None,
    json: JsonFlag = False,
) -> None:
    """Redemption rate and incremental sales against the holdout (Welch's t, 95 %)."""
    with unit_of_work(ctx) as session:
        result = coupons.report(session, key, day_option(on, "--on"))
    data = ReportOut.model_validate(asdict(result)).model_dump(mode="json")
    if json:
        print_json(data)
        return
    table = Table("measure", "value")
    for name, value in data.items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


@app.command("seen")
def seen_command(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="The coupon's code.")]
) -> None:
    """Mark a coupon seen (the mail opened)."""
    with unit_of_work(ctx) as session:
        coupon = coupons.mark_seen(session, code)
        audit(session, "offers.coupon.seen", [coupon.customer_id], code=coupon.code)
        status = coupon.status
    console.print(f"Coupon {code.strip().upper()}: {status}.", markup=False)


@app.command("match")
def match_command(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Redeem coupons from later receipts, and expire those past their last day."""
    with unit_of_work(ctx) as session:
        result = coupons.match(session)
        audit(session, "offers.match", redeemed=result.redeemed, expired=result.expired)
    if json:
        print_json(asdict(result))
        return
    console.print(
        f"Redeemed {result.redeemed:,} coupons, expired {result.expired:,}.", markup=False
    )


def _coupon_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("code", "campaign", "product", "discount", "status", "valid until", "why")
    for r in rows:
        table.add_row(
            r["code"],
            r["campaign"],
            f"{r['sku']} {r['product_name']}",
            f"{r['discount_percent']} %",
            r["status"],
            str(r["valid_until"]),
            r["explanation"],
        )
    return table


@app.command("coupons")
def coupons_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    json: JsonFlag = False,
) -> None:
    """A customer's coupons, newest first."""
    with unit_of_work(ctx) as session:
        rows = coupons.describe(session, coupons.coupons_of(session, customer, campaign))
        audit(session, "offers.coupons.read", [customer], campaign=campaign)
    if json:
        print_json(rows)
        return
    console.print(_coupon_table(rows))


@app.command("attributes")
def attributes_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="name=true|false: what the customer stated (repeatable)."),
    ] = None,
    forget: Annotated[list[str] | None, typer.Option(help="Forget a stated attribute.")] = None,
    source: Annotated[str, typer.Option(help="Where the statement came from.")] = "cli",
    json: JsonFlag = False,
) -> None:
    """Show (and with --set or --forget, change) what relevance knows of the customer."""
    values: dict[str, bool | None] = dict.fromkeys(forget or [])
    for pair in set_ or []:
        name, _, text = pair.partition("=")
        if text.lower() not in ("true", "false"):
            raise fail(f"--set {pair!r}: write name=true or name=false")
        values[name.strip()] = text.lower() == "true"
    with unit_of_work(ctx) as session:
        if values:
            relevance.set_attributes(session, customer, values, source)
            audit(session, "offers.attributes.write", [customer], names=sorted(values))
        stated, in_effect = relevance.attributes_of(session, customer)
        audit(session, "offers.attributes.read", [customer])
    if json:
        print_json({"customer_id": customer, "stated": stated, "in_effect": in_effect})
        return
    table = Table("attribute", "in effect", "stated")
    for name, value in in_effect.items():
        table.add_row(
            name, str(value).lower(), "" if name not in stated else str(stated[name]).lower()
        )
    console.print(table)


# --- till offers and choose your offers ---


@app.command("checkout")
def checkout_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    basket: Annotated[
        str | None, typer.Option(help="The basket now: SKUs separated by commas.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="The moment of the checkout, e.g. 2026-05-04T10:00+03:00 (default now)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=0, max=50, help="How many (default the till_offers setting).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The offers a customer gets at the till for the next visit, with why."""
    moment = moment_option(at, "--at")
    skus = [s.strip() for s in (basket or "").split(",") if s.strip()]
    with unit_of_work(ctx) as session:
        products = till.products_of_skus(session, skus, "--basket")
        found = till.checkout_offers(session, customer, products, moment, limit)
        audit(session, "offers.checkout.read", [customer], offers=[o.sku for o in found.offers])
    if json:
        print_json(asdict(found))
        return
    if found.refusal:
        console.print(f"No offers for customer {customer}: {found.refusal}.", markup=False)
        return
    if not found.offers:
        console.print(f"No offers for customer {customer} this time.", markup=False)
        return
    table = Table("sku", "product", "group", "kind", "due", "score", "why")
    for o in found.offers:
        table.add_row(
            o.sku,
            o.name,
            o.product_group,
            o.kind,
            o.due_on.isoformat() if o.due_on else "",
            f"{o.score:.3f}",
            o.explanation,
        )
    console.print(table)


@app.command("choice")
def choice_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    campaign: Annotated[str, typer.Option(help="The campaign's key.")],
    limit: Annotated[int | None, typer.Option(help="Show at most this many.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The offers a customer may choose from in a campaign (choose your offers)."""
    with unit_of_work(ctx) as session:
        found = choices.offers_to_choose(session, campaign, customer, limit)
        audit(session, "offers.choice.read", [customer], campaign=campaign)
    if json:
        print_json(asdict(found))
        return
    if found.refusal:
        console.print(f"No offers for customer {customer}: {found.refusal}.", markup=False)
        return
    console.print(f"{found.picks_left} picks left.", markup=False)
    table = Table("sku", "product", "group", "kind", "discount", "why")
    for o in found.offers:
        table.add_row(
            o.sku, o.name, o.product_group, o.kind, f"{o.discount_percent} %", o.explanation
        )
    console.print(table)


@app.command("choose")
def choose_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    products: Annotated[list[str], typer.Argument(help="SKUs among the offers shown.")],
    campaign: Annotated[str, typer.Option(help="The campaign's key.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Store the customer's picks; each becomes a coupon of the campaign."""
    with unit_of_work(ctx) as session:
        issued = choices.choose(session, campaign, customer, products)
        rows = coupons.describe(session, issued)
        audit(session, "offers.choice.write", [customer], campaign=campaign, products=products)
    if json:
        print_json(rows)
        return
    console.print(_coupon_table(rows))
