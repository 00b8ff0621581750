"""The `oppiva` command end to end, on real SQLite and real PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from oppiva.customers.models import Identity, Interaction
from oppiva.customers.service import count_customers, find_customers
from oppiva.db import Store
from oppiva.migrations import head
from oppiva.privacy.models import ConsentEvent, PreferenceEvent
from oppiva.privacy.service import EXPORT_FORMAT
from tests.cli.conftest import Cli, describe, error_line

BACKENDS = ["sqlite", "postgresql"]
MAIJA = ("--email", "MAIJA@Example.fi", "--phone", "040 123 4567")


def rows(db: Store, model: type) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def active_customers(db: Store) -> int:
    with db.transaction() as session:
        return count_customers(session)


def found_ids(db: Store, query: str) -> list[int]:
    with db.transaction() as session:
        return [c.id for c in find_customers(session, query)]


# --- the register ------------------------------------------------------------------------


def test_added_customer_is_found_by_normalised_email_and_by_phone_in_international_form(
    cli: Cli,
) -> None:
    added = cli.ok("customers", "add", "--name", "Maija Meikäläinen", *MAIJA)
    match = re.search(r"Added customer (\d+)\.", added.stdout)
    assert match, describe(added)
    customer_id = int(match.group(1))
    assert "Maija Meikäläinen" in added.stdout

    by_email = cli.json("customers", "find", "maija@example.fi")
    by_phone = cli.json("customers", "find", "+358401234567")
    assert [c["id"] for c in by_email] == [customer_id]
    assert by_email == by_phone
    assert {i["display"] for i in by_email[0]["identities"]} == {
        "maija@example.fi",
        "+358401234567",
    }

    for query in ("maija@example.fi", "+358401234567"):
        plain = cli.ok("customers", "find", query)
        assert "Maija Meikäläinen" in plain.stdout
        assert str(customer_id) in plain.stdout


def test_update_corrects_fields_and_adds_and_removes_identities(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", "--card", "6012 0000 1111")
    card = cli.json("customers", "show", str(customer_id))["identities"][0]
    updated = cli.json(
        "customers",
        "update",
        str(customer_id),
        "--name",
        "Maija Virtanen",
        "--birthday",
        "1980-05-06",
        "--add-email",
        "Maija@Example.fi",
        "--add-identity",
        "login:maija",
        "--remove-identity",
        str(card["id"]),
    )
    assert updated["name"] == "Maija Virtanen" and updated["birthday"] == "1980-05-06"
    assert {(i["kind"], i["display"], i["is_primary"]) for i in updated["identities"]} == {
        ("email", "maija@example.fi", True),
        ("login", "maija", True),
    }
    assert cli.json("customers", "find", "virtanen")[0]["id"] == customer_id


def test_a_refused_update_changes_nothing(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    before = cli.json("customers", "show", str(customer_id))
    line = error_line(
        cli("customers", "update", str(customer_id), "--name", "New", "--add-phone", "12")
    )
    assert "--add-phone" in line and "not a valid phone number" in line
    assert cli.json("customers", "show", str(customer_id)) == before


def test_contacts_names_persons_of_an_organisation_in_roles(cli: Cli) -> None:
    org = cli.add("Rakennus Oy Kivi", "--organisation")
    person = cli.add("Pekka Ostaja")
    listed = cli.ok("customers", "contacts", str(org), "--add", str(person), "--role", "buyer")
    assert "Pekka Ostaja" in listed.stdout and "buyer" in listed.stdout
    assert "not an organisation" in error_line(
        cli("customers", "contacts", str(person), "--add", str(org), "--role", "x")
    )
    assert "go together" in error_line(cli("customers", "contacts", str(org), "--add", "1"))


def test_show_prints_the_customer_card_and_its_json(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA, "--birthday", "1980-05-17")

    plain = cli.ok("customers", "show", str(customer_id))
    for text in ("Maija Meikäläinen", "maija@example.fi", "+358401234567", "1980-05-17"):
        assert text in plain.stdout

    shown = cli.json("customers", "show", str(customer_id))
    assert shown["id"] == customer_id
    assert shown["name"] == "Maija Meikäläinen"
    assert shown["status"] == "active"
    assert shown["birthday"] == "1980-05-17"


def test_find_matches_part_of_a_name_case_insensitively(cli: Cli) -> None:
    maija = cli.add("Maija Meikäläinen", *MAIJA)
    matti = cli.add("Matti Meikäläinen", "--email", "matti@example.fi")
    cli.add("Aino Virtanen", "--email", "aino@example.fi")

    assert [c["id"] for c in cli.json("customers", "find", "meikäl")] == [maija, matti]
    assert [c["id"] for c in cli.json("customers", "find", "MAIJA")] == [maija]
    plain = cli.ok("customers", "find", "virta")
    assert "Aino Virtanen" in plain.stdout
    assert "Meikäläinen" not in plain.stdout


def test_find_without_a_match_says_so(cli: Cli) -> None:
    cli.add("Maija Meikäläinen", *MAIJA)
    assert cli.json("customers", "find", "nobody@example.fi") == []
    assert "No customer matches" in cli.ok("customers", "find", "nobody@example.fi").stdout


def test_recorded_contact_appears_on_the_timeline(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    summary = "Asked about the late delivery"

    recorded = cli.ok(
        "customers", "record", str(customer_id), "--channel", "phone", "--summary", summary
    )
    assert "Recorded contact" in recorded.stdout

    entries = cli.json("customers", "timeline", str(customer_id))
    assert len(entries) == 1
    assert entries[0]["channel"] == "phone"
    assert entries[0]["direction"] == "inbound"
    assert entries[0]["summary"] == summary
    assert entries[0]["customer_id"] == customer_id
    assert entries[0]["staff"].startswith("cli")

    plain = cli.ok("customers", "timeline", str(customer_id))
    assert "phone" in plain.stdout
    assert "Asked about" in plain.stdout


def test_export_prints_the_subject_access_export_on_stdout(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    cli.ok("customers", "record", str(customer_id), "--channel", "phone", "--summary", "Hello")

    result = cli.ok("customers", "export", str(customer_id))
    data = json.loads(result.stdout)
    assert data["format"] == "oppiva.subject-access-export/1" == EXPORT_FORMAT
    assert data["customer_id"] == customer_id
    assert [r["customer_id"] for r in data["records"]] == [customer_id]
    assert "maija@example.fi" in result.stdout
    assert "Hello" in result.stdout


def test_export_out_writes_the_json_to_the_file(cli: Cli, tmp_path: Path) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    target = tmp_path / "maija.json"

    result = cli.ok("customers", "export", str(customer_id), "--out", str(target))
    assert str(target) in result.stdout
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["format"] == "oppiva.subject-access-export/1"
    assert data["customer_id"] == customer_id
    assert "Maija Meikäläinen" in target.read_text(encoding="utf-8")


def test_erase_with_yes_removes_the_customer(cli: Cli, db: Store) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    other = cli.add("Matti Virtanen", "--email", "matti@example.fi")

    result = cli.ok("customers", "erase", str(customer_id), "--yes")
    assert str(customer_id) in result.stdout

    assert "does not exist" in error_line(cli("customers", "show", str(customer_id)))
    assert cli.json("customers", "find", "maija@example.fi") == []
    assert cli.json("customers", "find", "+358401234567") == []
    assert cli.json("customers", "find", "Maija") == []
    assert [c["id"] for c in cli.json("customers", "find", "")] == [other]
    assert active_customers(db) == 1


def test_erase_answered_no_aborts_and_keeps_the_customer(cli: Cli, db: Store) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    before = cli.json("customers", "show", str(customer_id))

    result = cli("customers", "erase", str(customer_id), input="n\n")
    assert result.exit_code == 1, describe(result)
    assert "Erase customer" in result.output
    assert "Aborted" in result.output
    assert "Traceback" not in result.output

    assert cli.json("customers", "show", str(customer_id)) == before
    assert found_ids(db, "maija@example.fi") == [customer_id]


def test_merge_then_unmerge_restores_both_customers_exactly(cli: Cli) -> None:
    survivor = cli.add("Maija Meikäläinen", *MAIJA)
    absorbed = cli.add(
        "Maija Meikalainen",
        "--email",
        "maija.m@example.org",
        "--card",
        "6012000000001",
        "--birthday",
        "1980-05-17",
        "--street",
        "Hämeenkatu 1",
        "--postal-code",
        "33100",
        "--city",
        "Tampere",
    )
    for cid, channel, text in ((survivor, "phone", "Called"), (absorbed, "store", "Visited")):
        cli.ok("customers", "record", str(cid), "--channel", channel, "--summary", text)
    cli.ok("consent", "set", str(survivor), "marketing", "email", "granted", "--source", "web")
    cli.ok("consent", "set", str(absorbed), "marketing", "sms", "denied", "--source", "till")

    def snapshot() -> dict[str, object]:
        return {
            f"{what} {cid}": cli.json(*command, str(cid))
            for cid in (survivor, absorbed)
            for what, command in (
                ("show", ("customers", "show")),
                ("timeline", ("customers", "timeline")),
                ("consent", ("consent", "show", "--history")),
            )
        }

    before = snapshot()

    merged = cli.ok(
        "customers", "merge", str(survivor), str(absorbed), "--reason", "same person, two emails"
    )
    assert f"Merged customer {absorbed} into {survivor}" in merged.stdout
    gone = cli.json("customers", "show", str(absorbed))
    assert gone["status"] == "merged"
    assert gone["merged_into_id"] == survivor
    kept = cli.json("customers", "show", str(survivor))
    assert kept["birthday"] == "1980-05-17"
    assert {i["display"] for i in before[f"show {absorbed}"]["identities"]} <= {  # type: ignore[index]
        i["display"] for i in kept["identities"]
    }
    assert len(cli.json("customers", "timeline", str(survivor))) == 2
    assert [c["id"] for c in cli.json("customers", "find", "maija.m@example.org")] == [survivor]

    unmerged = cli.ok("customers", "unmerge", str(absorbed), "--reason", "two people after all")
    assert f"separate from {survivor}" in unmerged.stdout

    assert snapshot() == before
    assert [c["id"] for c in cli.json("customers", "find", "maija.m@example.org")] == [absorbed]
    history = json.loads(cli.ok("customers", "merges", str(absorbed)).stdout)
    assert len(history) == 1
    assert history[0]["unmerged_at"] is not None


# --- consent -----------------------------------------------------------------------------


def test_granted_consent_is_shown_in_effect_and_in_history(cli: Cli) -> None:
    customer_id = cli.add("Maija Meikäläinen", *MAIJA)
    cid = str(customer_id)

    result = cli.ok("consent", "set", cid, "marketing", "email", "granted", "--source", "web")
    assert "marketing by email granted" in result.stdout

    state = cli.json("consent", "show", cid)
    assert state["consents"]["marketing/email"] == "granted"
    assert state["consents"]["marketing/sms"] == "unknown"
    assert state["preferences"] == {"remember_me": True, "no_offers": False}

    history = cli.ok("consent", "show", cid, "--history")
    for text in ("marketing", "email", "granted", "web"):
        assert text in history.stdout
    events = cli.json("consent", "show", cid, "--history")
    assert [(e["purpose"], e["channel"], e["status"], e["source"]) for e in events] == [
        ("marketing", "email", "granted", "web")
    ]

    plain = cli.ok("consent", "show", cid)
    assert "granted" in plain.stdout


def test_check_allows_with_granted_consent_and_refuses_after_withdrawal(cli: Cli) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    cli.ok("consent", "set", cid, "marketing", "email", "granted", "--source", "web")

    allowed = cli.ok("consent", "check", cid, "marketing", "email")
    assert allowed.stdout.startswith("allowed:")

    cli.ok("consent", "set", cid, "marketing", "email", "withdrawn", "--source", "unsubscribe")
    refused = cli("consent", "check", cid, "marketing", "email")
    assert refused.exit_code == 1, describe(refused)
    assert refused.stdout.startswith("not allowed:")
    assert "withdrawn" in refused.stdout
    assert [e["status"] for e in cli.json("consent", "show", cid, "--history")] == [
        "granted",
        "withdrawn",
    ]


def test_check_refuses_a_channel_never_asked(cli: Cli) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    cli.ok("consent", "set", cid, "marketing", "email", "granted", "--source", "web")
    refused = cli("consent", "check", cid, "marketing", "sms")
    assert refused.exit_code == 1, describe(refused)
    assert refused.stdout.startswith("not allowed:")


def test_no_offers_preference_makes_the_check_refuse(cli: Cli) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    cli.ok("consent", "set", cid, "marketing", "email", "granted", "--source", "web")
    cli.ok("consent", "check", cid, "marketing", "email")

    assert "no_offers on" in cli.ok("consent", "prefer", cid, "no_offers", "on").stdout
    refused = cli("consent", "check", cid, "marketing", "email")
    assert refused.exit_code == 1, describe(refused)
    assert refused.stdout.startswith("not allowed:")
    assert "no offers" in refused.stdout
    assert cli.json("consent", "show", cid)["preferences"]["no_offers"] is True


# --- errors: one plain line, exit code 2, nothing written --------------------------------


def test_invalid_email_is_refused_in_one_line_and_nothing_is_written(cli: Cli, db: Store) -> None:
    result = cli(
        "customers", "add", "--name", "Maija", "--email", "maija@", "--phone", "0401234567"
    )
    line = error_line(result)
    assert "email" in line
    assert "not a valid email" in line
    assert active_customers(db) == 0
    assert rows(db, Identity) == 0


def test_invalid_phone_is_refused_in_one_line_and_nothing_is_written(cli: Cli, db: Store) -> None:
    result = cli(
        "customers", "add", "--name", "Maija", "--email", "maija@example.fi", "--phone", "040"
    )
    line = error_line(result)
    assert "phone" in line
    assert "'040'" in line
    assert "not a valid phone number" in line
    assert active_customers(db) == 0
    assert found_ids(db, "maija@example.fi") == []


def test_duplicate_identity_is_refused_in_one_line_and_nothing_is_written(
    cli: Cli, db: Store
) -> None:
    first = cli.add("Maija Meikäläinen", *MAIJA)
    result = cli(
        "customers",
        "add",
        "--name",
        "Matti",
        "--email",
        "matti@example.fi",
        "--phone",
        "+358 40 1234567",
    )
    line = error_line(result)
    assert "+358401234567" in line
    assert "already belongs to customer" in line
    assert str(first) in line
    assert active_customers(db) == 1
    assert found_ids(db, "matti@example.fi") == []
    assert rows(db, Identity) == 2


def test_same_identity_twice_in_one_add_is_refused(cli: Cli, db: Store) -> None:
    result = cli(
        "customers",
        "add",
        "--name",
        "Maija",
        "--email",
        "maija@example.fi",
        "--email",
        "MAIJA@example.fi",
    )
    line = error_line(result)
    assert "emails[1]" in line
    assert "repeats" in line
    assert active_customers(db) == 0


@pytest.mark.parametrize(
    "command",
    [
        ("customers", "show", "999"),
        ("customers", "timeline", "999"),
        ("customers", "export", "999"),
        ("customers", "erase", "999", "--yes"),
        ("customers", "record", "999", "--channel", "phone", "--summary", "Hello"),
        ("consent", "set", "999", "marketing", "email", "granted"),
        ("consent", "show", "999"),
        ("consent", "check", "999", "marketing", "email"),
        ("consent", "prefer", "999", "no_offers", "on"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_unknown_customer_id_is_refused_in_one_line_and_nothing_is_written(
    cli: Cli, db: Store, command: tuple[str, ...]
) -> None:
    cli.add("Maija Meikäläinen", *MAIJA)
    line = error_line(cli(*command))
    assert line == "error: customer 999 does not exist"
    assert rows(db, Interaction) == 0
    assert rows(db, ConsentEvent) == 0
    assert rows(db, PreferenceEvent) == 0
    assert active_customers(db) == 1


def test_merge_with_an_unknown_customer_is_refused(cli: Cli, db: Store) -> None:
    cid = cli.add("Maija Meikäläinen", *MAIJA)
    line = error_line(cli("customers", "merge", str(cid), "999", "--reason", "same"))
    assert "customer 999 does not exist" in line
    assert cli.json("customers", "show", str(cid))["status"] == "active"


@pytest.mark.parametrize("command", ["set", "check"])
def test_unknown_purpose_is_refused_in_one_line_and_nothing_is_written(
    cli: Cli, db: Store, command: str
) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    args = ["consent", command, cid, "newsletters", "email"]
    if command == "set":
        args.append("granted")
    line = error_line(cli(*args))
    assert line.startswith("error: purpose: unknown purpose 'newsletters'")
    assert "marketing" in line  # says which purposes exist
    assert rows(db, ConsentEvent) == 0


def test_unknown_channel_and_status_are_refused_in_one_line(cli: Cli, db: Store) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    assert error_line(cli("consent", "set", cid, "marketing", "fax", "granted")).startswith(
        "error: channel: unknown channel 'fax'"
    )
    assert error_line(cli("consent", "set", cid, "marketing", "email", "maybe")).startswith(
        "error: status: unknown consent status 'maybe'"
    )
    assert rows(db, ConsentEvent) == 0


def test_consent_at_without_time_zone_is_refused_in_one_line(cli: Cli, db: Store) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    line = error_line(
        cli("consent", "set", cid, "marketing", "email", "granted", "--at", "2026-05-01T10:00")
    )
    assert line.startswith("error: --at:")
    assert "time zone" in line
    assert rows(db, ConsentEvent) == 0


def test_invalid_birthday_is_refused_in_one_line(cli: Cli, db: Store) -> None:
    line = error_line(cli("customers", "add", "--name", "Maija", "--birthday", "17.5.1980"))
    assert line.startswith("error: birthday:")
    assert active_customers(db) == 0


def test_identity_without_a_kind_is_refused_in_one_line(cli: Cli, db: Store) -> None:
    line = error_line(cli("customers", "add", "--name", "Maija", "--identity", "maija"))
    assert "--identity" in line
    assert "KIND:VALUE" in line
    assert active_customers(db) == 0


@pytest.mark.parametrize(
    ("options", "start"),
    [
        (("--name", ""), "error: name:"),
        (("--name", "Maija", "--language", "de"), "error: language:"),
        (("--name", "Maija", "--street", "Hämeenkatu 1"), "error: --street, --postal-code"),
        (("--name", "Maija", "--card", "12"), "error: identities[0].value:"),
        (("--name", "Maija", "--identity", "shoe:42"), "error: identities[0].kind:"),
    ],
    ids=["empty name", "language", "partial address", "short card", "unknown kind"],
)
def test_refused_add_options_are_named_in_one_line_and_nothing_is_written(
    cli: Cli, db: Store, options: tuple[str, ...], start: str
) -> None:
    assert error_line(cli("customers", "add", *options)).startswith(start)
    assert active_customers(db) == 0
    assert rows(db, Identity) == 0


def test_blank_name_is_refused_in_one_line_and_nothing_is_written(cli: Cli, db: Store) -> None:
    line = error_line(cli("customers", "add", "--name", "   ", "--email", "maija@example.fi"))
    assert line.startswith("error: name:")
    assert active_customers(db) == 0
    assert found_ids(db, "maija@example.fi") == []


def test_merge_and_unmerge_refusals_are_one_line_and_change_nothing(cli: Cli) -> None:
    a = str(cli.add("Maija Meikäläinen", *MAIJA))
    b = str(cli.add("Maija M", "--email", "maija.m@example.org"))
    before = [cli.json("customers", "show", x) for x in (a, b)]

    assert error_line(cli("customers", "merge", a, a, "--reason", "same")).startswith(
        "error: absorbed_id: a customer cannot be merged with itself"
    )
    assert error_line(cli("customers", "merge", a, b, "--reason", "  ")).startswith(
        "error: reason:"
    )
    assert error_line(cli("customers", "unmerge", b, "--reason", "oops")) == (
        f"error: customer {b} is not merged into another customer"
    )
    assert [cli.json("customers", "show", x) for x in (a, b)] == before

    cli.ok("customers", "merge", a, b, "--reason", "same person")
    for command in (
        ("customers", "merge", a, b, "--reason", "again"),
        ("consent", "set", b, "marketing", "email", "granted"),
        ("consent", "prefer", b, "no_offers", "on"),
    ):
        assert error_line(cli(*command)) == f"error: customer {b} was merged into customer {a}"


def test_refused_contact_and_preference_values_are_one_line(cli: Cli, db: Store) -> None:
    cid = str(cli.add("Maija Meikäläinen", *MAIJA))
    line = error_line(cli("customers", "record", cid, "--channel", "fax", "--summary", "Hi"))
    assert line.startswith("error: channel:")
    assert error_line(cli("consent", "prefer", cid, "no_offers", "maybe")).startswith(
        "error: value:"
    )
    assert error_line(cli("consent", "prefer", cid, "newsletter", "on")).startswith(
        "error: name: unknown preference 'newsletter'"
    )
    assert error_line(cli("consent", "check", cid, "marketing", "all")).startswith(
        "error: channel:"
    )
    assert rows(db, Interaction) == 0
    assert rows(db, PreferenceEvent) == 0


# --- the schema --------------------------------------------------------------------------


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_init_creates_the_schema_at_the_newest_revision(
    empty_database: str, cli_for: Callable[[str], Cli]
) -> None:
    cli = cli_for(empty_database)
    assert cli.ok("db", "current").stdout.startswith("store: none")

    result = cli.ok("init")
    assert "Store ready" in result.stdout
    assert head() in result.stdout

    assert cli.ok("db", "current").stdout.strip() == f"store: {head()}, newest: {head()}"
    assert cli.json("customers", "find", "") == []
    cli.ok("init")  # a second init is harmless
    assert cli.ok("db", "current").stdout.strip() == f"store: {head()}, newest: {head()}"


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_command_on_an_uninitialised_database_says_to_run_init(
    empty_database: str, cli_for: Callable[[str], Cli]
) -> None:
    cli = cli_for(empty_database)
    for command in (
        ("customers", "find", "maija"),
        ("customers", "add", "--name", "Maija"),
        ("consent", "show", "1"),
    ):
        line = error_line(cli(*command))
        assert "oppiva init" in line
        assert "revision none" in line
    assert cli.ok("db", "current").stdout.startswith("store: none")


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_downgrade_to_base_then_upgrade_gives_a_working_empty_store(
    empty_database: str, cli_for: Callable[[str], Cli]
) -> None:
    cli = cli_for(empty_database)
    cli.ok("init")
    cli.add("Maija Meikäläinen", *MAIJA)

    assert "Schema at base" in cli.ok("db", "downgrade", "base").stdout
    assert cli.ok("db", "current").stdout.startswith("store: none")
    assert "oppiva init" in error_line(cli("customers", "find", "maija"))

    assert f"Schema at {head()}" in cli.ok("db", "upgrade").stdout
    assert cli.json("customers", "find", "") == []
    cli.add("Maija Meikäläinen", *MAIJA)
    assert len(cli.json("customers", "find", "maija@example.fi")) == 1


# --- the demo ----------------------------------------------------------------------------


def test_demo_loads_the_sample_and_prints_the_counts(cli: Cli, db: Store) -> None:
    result = cli.ok("demo", "--people", "30", "--seed", "3", "--no-fresh", "--customers", "0")
    match = re.search(
        r"Loaded (\d+) people and (\d+) organisations \((\d+) identities, (\d+) consent "
        r"decisions, (\d+) timeline entries\); (\d+) active customers in ",
        " ".join(result.stdout.split()),  # rich wraps the line at the console width
    )
    assert match, describe(result)
    people, orgs, identities, consents, interactions, total = map(int, match.groups())
    assert (people, orgs, total) == (30, 8, 38)
    assert active_customers(db) == 38
    assert rows(db, Identity) == identities
    assert rows(db, ConsentEvent) == consents
    assert rows(db, Interaction) == interactions
    assert consents > 0
    assert interactions > 0


def test_demo_is_the_same_for_the_same_seed(cli_for: Callable[[str], Cli], tmp_path: Path) -> None:
    def summary(name: str, seed: str) -> str:
        out = cli_for(f"sqlite:///{tmp_path / name}").ok(
            "demo", "--people", "30", "--seed", seed, "--customers", "0"
        )
        text = " ".join(out.stdout.split())  # rich wraps the line at the console width
        return text[text.index("Loaded") : text.index(" in sqlite")]

    assert summary("a.db", "3") == summary("b.db", "3")
    assert summary("a.db", "3") != summary("c.db", "4")


def test_demo_fresh_starts_the_sqlite_file_anew(
    cli_for: Callable[[str], Cli], tmp_path: Path
) -> None:
    cli = cli_for(f"sqlite:///{tmp_path / 'demo.db'}")
    cli.ok("init")
    cli.add("Somebody Else", "--email", "else@example.fi")
    first = cli.ok("demo", "--people", "30", "--seed", "3", "--customers", "0")
    assert "38 active customers" in " ".join(first.stdout.split())
    second = cli.ok("demo", "--people", "30", "--seed", "3", "--customers", "0")
    assert "38 active customers" in " ".join(second.stdout.split())
    assert len(cli.json("customers", "find", "", "--limit", "1000")) == 38
    assert cli.json("customers", "find", "else@example.fi") == []


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_demo_initialises_an_empty_database(
    empty_database: str, cli_for: Callable[[str], Cli]
) -> None:
    cli = cli_for(empty_database)
    result = cli.ok("demo", "--people", "5", "--seed", "3", "--no-fresh", "--customers", "0")
    assert "13 active customers" in " ".join(result.stdout.split())
    assert cli.ok("db", "current").stdout.strip() == f"store: {head()}, newest: {head()}"


def test_demo_loaded_twice_without_fresh_is_refused_in_one_line(cli: Cli, db: Store) -> None:
    cli.ok("demo", "--people", "5", "--seed", "3", "--no-fresh", "--customers", "0")
    again = cli("demo", "--people", "5", "--seed", "3", "--no-fresh", "--customers", "0")
    # The progress bar may have started on stdout; the refusal itself is one line on stderr.
    line = error_line(again, quiet_stdout=False)
    assert "already belongs to customer" in line
    assert active_customers(db) == 13
