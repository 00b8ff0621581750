"""The member statement as CSV (formulas made inert) and as a printable page, from the CLI and
the API; on both databases."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from oppiva.access.models import AuditEntry
from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.loyalty import ledger, rewards, statement_formats, vouchers
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer
from tests.loyalty.conftest import WHEN

AT = WHEN + timedelta(days=1)
CATALOGUE = """
- key: evening
  name: An evening out
  kind: experience
  cost_points: 500
  options: [{key: cinema, name: Cinema for two}, {key: spa, name: Spa <entry>}]
"""


@pytest.fixture
def account(db: Store) -> int:
    """A member with an earning, a formula-like adjustment, a redemption, a used voucher and a
    cancelled one."""
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa & Co")
        customer = make_customer(session, name="Aino <Aalto>").id
        ledger.join(session, "plussa", customer, at=WHEN)
        ledger.earn(
            session,
            "plussa",
            customer,
            1200,
            source="till",
            external_id="R1",
            rule="2 points per euro",
            at=WHEN - timedelta(days=30),
        )
        ledger.adjust(
            session,
            "plussa",
            customer,
            10,
            reason='=HYPERLINK("http://x")',
            staff="@eeva",
            source="test",
            external_id="A1",
            at=WHEN,
        )
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        used = rewards.redeem(
            session,
            "plussa",
            customer,
            "evening",
            option="spa",
            source="app",
            external_id="1",
            at=AT,
        )
        vouchers.use(session, used.code, source="till", external_id="K1", at=AT)
        cancelled = rewards.redeem(
            session,
            "plussa",
            customer,
            "evening",
            option="cinema",
            source="app",
            external_id="2",
            at=AT,
        )
        vouchers.cancel(session, cancelled.code, reason="rain", staff="eeva", at=AT)
    return customer


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_has_every_entry_with_its_rule_and_reward_and_no_live_formula(db, account):
    with db.transaction() as session:
        text = statement_formats.to_csv(ledger.statement(session, "plussa", account))
    table = rows(text)
    assert [(r["kind"], r["points"], r["balance"]) for r in table] == [
        ("earn", "1200", "1200"),
        ("adjust", "10", "1210"),
        ("spend", "-500", "710"),
        ("spend", "-500", "210"),
        ("adjust", "500", "710"),
    ]
    assert table[0]["rule"] == "2 points per euro"
    assert table[1]["reason"] == '\'=HYPERLINK("http://x")'
    assert table[1]["staff"] == "'@eeva"
    assert (table[2]["reward"], table[2]["option"]) == ("An evening out", "Spa <entry>")
    assert table[4]["voucher"] == table[3]["voucher"] != table[2]["voucher"]
    assert all(not cell.startswith(("=", "+", "@")) for r in table for cell in r.values())


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(" ".join(data.split()))


def test_the_page_is_self_contained_escaped_and_shows_the_member_balance_and_entries(db, account):
    with db.transaction() as session:
        page = statement_formats.to_html(
            vouchers.member_statement(session, "plussa", account, AT + timedelta(days=1))
        )
    parser = _Text()
    parser.feed(page)
    text = " | ".join(parser.text)
    assert "<Aalto>" not in page and "Aino &lt;Aalto&gt;" in page
    assert "Spa &lt;entry&gt;" in page
    assert {"link", "script", "img"}.isdisjoint(parser.tags)
    assert "@media print" in page and "@page" in page
    for words in (
        "Plussa & Co",
        "Member number | 1",
        "710 | points available",
        "2 points per euro",
        "Reward: An evening out (Spa <entry>), voucher",
        "cancelled: An evening out (Cinema for two)",
        "Earned",
        "Spent",
        "used",
        "cancelled",
    ):
        assert words in text, words


def test_an_empty_statement_says_so(db):
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        customer = make_customer(session).id
        ledger.join(session, "plussa", customer, at=WHEN)
        page = statement_formats.to_html(vouchers.member_statement(session, "plussa", customer))
        text = statement_formats.to_csv(ledger.statement(session, "plussa", customer))
    assert "No entries yet." in page and "No rewards redeemed yet." in page
    assert text.splitlines() == [",".join(statement_formats.CSV_COLUMNS)]


def test_the_cli_writes_csv_json_and_the_page(db, account, tmp_path):
    cli = Cli(db.url)
    table = rows(cli.ok("loyalty", "statement", "plussa", str(account), "--format", "csv").stdout)
    assert len(table) == 5
    assert rows(cli.ok("loyalty", "statement", "plussa", str(account), "--csv").stdout) == table
    entries = cli.ok("loyalty", "statement", "plussa", str(account), "--format", "json").stdout
    assert '"reward": "An evening out"' in entries
    page = tmp_path / "statement.html"
    done = cli.ok(
        "loyalty", "statement", "plussa", str(account), "--format", "html", "--output", str(page)
    )
    assert str(page) in done.stdout
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    bad = cli(
        "loyalty",
        "statement",
        "plussa",
        str(account),
        "--format",
        "html",
        "--output",
        str(tmp_path / "no" / "such" / "dir.html"),
    )
    assert "--output" in error_line(bad)
    table_to_file = cli("loyalty", "statement", "plussa", str(account), "--output", str(page))
    assert "--format" in error_line(table_to_file)
    assert (
        "--format" in cli("loyalty", "statement", "plussa", str(account), "--format", "pdf").stderr
    )


def test_the_api_answers_csv_and_html_and_audits(db, account):
    key = make_key(db, ["loyalty:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        base = f"/v1/loyalty/programmes/plussa/members/{account}"
        as_csv = api.get(f"{base}/statement.csv")
        assert as_csv.status_code == 200, as_csv.text
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert "attachment" in as_csv.headers["content-disposition"]
        assert len(rows(as_csv.text)) == 5
        as_html = api.get(f"{base}/statement.html")
        assert as_html.headers["content-type"].startswith("text/html")
        assert "An evening out" in as_html.text
        assert (
            api.get("/v1/loyalty/programmes/plussa/members/999999/statement.csv").status_code == 422
        )
        assert api.get("/v1/loyalty/programmes/nosuch/members/1/statement.html").status_code == 404
    with db.transaction() as session:
        actions = list(session.scalars(select(AuditEntry.action)))
    assert actions.count("loyalty.statement.read") == 2
