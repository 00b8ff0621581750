"""Generated sample customers for the demo: people, organisations, identities, consents, contacts.

Deterministic for a seed, so the demo and its tests always show the same register.
"""

from __future__ import annotations

import random
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from oppiva.customers import service as customers
from oppiva.customers.models import Channel, Direction
from oppiva.customers.schemas import AddressIn, CustomerCreate, InteractionIn
from oppiva.privacy import service as privacy
from oppiva.privacy.models import ContactChannel, Purpose

GIVEN = [
    "Maija",
    "Matti",
    "Aino",
    "Juhani",
    "Helmi",
    "Eino",
    "Sofia",
    "Onni",
    "Aada",
    "Väinö",
    "Kaarina",
    "Pekka",
    "Liisa",
    "Mikko",
    "Tuula",
    "Jari",
    "Sanna",
    "Antti",
    "Elina",
    "Ville",
    "Päivi",
    "Timo",
    "Hanna",
    "Kalle",
    "Emilia",
    "Oskari",
    "Siiri",
    "Lauri",
    "Noora",
    "Eetu",
]
FAMILY = [
    "Meikäläinen",
    "Virtanen",
    "Korhonen",
    "Mäkinen",
    "Nieminen",
    "Mäkelä",
    "Hämäläinen",
    "Laine",
    "Heikkinen",
    "Koskinen",
    "Järvinen",
    "Lehtonen",
    "Lehtinen",
    "Saarinen",
    "Salminen",
    "Heinonen",
    "Niemi",
    "Heikkilä",
    "Kinnunen",
    "Salonen",
    "Turunen",
    "Ström",
]
STREETS = [
    "Mannerheimintie",
    "Hämeenkatu",
    "Aleksanterinkatu",
    "Puistokatu",
    "Kauppakatu",
    "Rantatie",
    "Koulukatu",
    "Asemakatu",
    "Kirkkokatu",
    "Myllytie",
]
CITIES = [
    ("00100", "Helsinki"),
    ("33100", "Tampere"),
    ("20100", "Turku"),
    ("40100", "Jyväskylä"),
    ("90100", "Oulu"),
    ("70100", "Kuopio"),
    ("15100", "Lahti"),
    ("65100", "Vaasa"),
]
COMPANIES = [
    "Rakennus Oy Kivi",
    "Kahvila Aurinko Ky",
    "Tilitoimisto Numero Oy",
    "Kukkakauppa Orvokki",
    "Autokorjaamo Mäkelä Oy",
    "Hotelli Järvenranta",
    "Koulutus Oy Verso",
    "Leipomo Ruis Oy",
]
ROLES = ["buyer", "managing director", "invoicing", "office manager"]
CONTACT_NOTES = [
    (Channel.STORE, Direction.INBOUND, "Asked whether the winter boots come in size 38."),
    (
        Channel.PHONE,
        Direction.INBOUND,
        "Complained about a late home delivery; credited delivery fee.",
    ),
    (Channel.EMAIL, Direction.OUTBOUND, "Sent the autumn member newsletter."),
    (Channel.WEB, Direction.INBOUND, "Updated delivery address in the web shop."),
    (Channel.EVENT, Direction.INBOUND, "Attended the wine tasting evening for members."),
    (Channel.SMS, Direction.OUTBOUND, "Reminder: your personal coupons expire on Sunday."),
    (Channel.MEETING, Direction.OUTBOUND, "Annual account review; agreed on quarterly visits."),
    (Channel.APP, Direction.INBOUND, "Rated the click-and-collect service 5/5."),
]


@dataclass
class SampleSummary:
    """What the sample loader put in the store."""

    people: int = 0
    organisations: int = 0
    identities: int = 0
    consents: int = 0
    interactions: int = 0
    ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DemoCredentials:
    """The demo's admin and till key, to be shown once."""

    admin_email: str
    admin_password: str
    till_key: str
    store: str


def demo_credentials(session: Session, created_by: str) -> DemoCredentials:
    """A demo admin with a random password and a till key bound to the demo store."""
    from oppiva.access import service as access

    password = secrets.token_urlsafe(12)
    admin = access.create_user(session, "admin@demo.example", "Demo Admin", password, ["admin"])
    key, _ = access.create_key(
        session,
        "demo till",
        ["receipts:write", "identify", "consent:check"],
        created_by=created_by,
        store="kamppi",
    )
    return DemoCredentials(admin.email, password, key, "kamppi")


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _phone(n: int) -> str:
    """A valid Finnish mobile number, different for every `n` below ten million; an 050 one,
    where the simulator's members have 04x ones, so the two never collide."""
    return f"+35850{(n * 7919 + 7_654_321) % 10_000_000:07d}"


def load_sample(
    session: Session,
    *,
    people: int = 200,
    organisations: int = 8,
    seed: int = 1,
    today: date | None = None,
    progress: Callable[[int], None] | None = None,
) -> SampleSummary:
    """Add generated customers to the store; the same seed always gives the same register."""
    rng = random.Random(seed)
    today = today or date.today()
    summary = SampleSummary()
    persons: list[int] = []
    for n in range(people):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        postal_code, city = rng.choice(CITIES)
        start = today - timedelta(days=rng.randrange(1, 3650))
        data = CustomerCreate(
            name=f"{given} {family}",
            given_name=given,
            family_name=family,
            language=rng.choices(["fi", "sv", "en"], weights=[85, 10, 5])[0],
            birthday=date(rng.randrange(1940, 2006), rng.randrange(1, 13), rng.randrange(1, 29))
            if rng.random() < 0.6
            else None,
            relationship_start=start,
            emails=[f"{_ascii(given)}.{_ascii(family)}{n}@example.fi"]
            if rng.random() < 0.85
            else [],
            phones=[_phone(n)] if rng.random() < 0.7 else [],
            identities=[{"kind": "card", "value": f"6012{n:08d}"}] if rng.random() < 0.6 else [],
            addresses=[
                AddressIn(
                    street=f"{rng.choice(STREETS)} {rng.randrange(1, 80)}",
                    postal_code=postal_code,
                    city=city,
                )
            ]
            if rng.random() < 0.7
            else [],
        )
        customer = customers.add_customer(session, data)
        persons.append(customer.id)
        summary.people += 1
        summary.identities += len(customer.identities)
        _consents(session, rng, customer.id, start, summary)
        _contacts(session, rng, customer.id, start, today, summary)
        if progress:
            progress(1)
    for name in COMPANIES[:organisations]:
        postal_code, city = rng.choice(CITIES)
        org = customers.add_customer(
            session,
            CustomerCreate(
                kind="organisation",
                name=name,
                business_id=f"{rng.randrange(1_000_000, 9_999_999)}-{rng.randrange(10)}",
                relationship_start=today - timedelta(days=rng.randrange(100, 3000)),
                emails=[f"info@{_ascii(name.split()[0])}{len(summary.ids)}.example.fi"],
                addresses=[
                    AddressIn(
                        kind="visiting",
                        street=f"{rng.choice(STREETS)} {rng.randrange(1, 80)}",
                        postal_code=postal_code,
                        city=city,
                    )
                ],
            ),
        )
        summary.organisations += 1
        summary.identities += len(org.identities)
        for person_id in rng.sample(persons, k=min(2, len(persons))):
            customers.add_contact_person(session, org.id, person_id, rng.choice(ROLES))
        _contacts(session, rng, org.id, org.relationship_start, today, summary)
        if progress:
            progress(1)
    summary.ids = persons
    return summary


def _consents(
    session: Session, rng: random.Random, customer_id: int, start: date, summary: SampleSummary
) -> None:
    joined = datetime(start.year, start.month, start.day, 12, tzinfo=UTC)
    for purpose in Purpose:
        for channel in ContactChannel:
            roll = rng.random()
            if roll < 0.45:
                continue
            status = "granted" if roll < 0.85 else "denied"
            privacy.set_consent(
                session,
                customer_id,
                purpose=purpose.value,
                channel=channel.value,
                status=status,
                source=rng.choice(["web form", "till", "phone"]),
                effective_at=joined,
            )
            summary.consents += 1
            if status == "granted" and rng.random() < 0.05:
                privacy.set_consent(
                    session,
                    customer_id,
                    purpose=purpose.value,
                    channel=channel.value,
                    status="withdrawn",
                    source="unsubscribe link",
                    effective_at=joined + timedelta(days=rng.randrange(1, 300)),
                )
                summary.consents += 1
    if rng.random() < 0.05:
        privacy.set_preference(
            session,
            customer_id,
            name="no_offers",
            value=True,
            source="web form",
            effective_at=joined,
        )


def _contacts(
    session: Session,
    rng: random.Random,
    customer_id: int,
    start: date,
    today: date,
    summary: SampleSummary,
) -> None:
    span = max((today - start).days, 1)
    for _ in range(rng.randrange(0, 5)):
        channel, direction, text = rng.choice(CONTACT_NOTES)
        day = start + timedelta(days=rng.randrange(span))
        moment = datetime(
            day.year, day.month, day.day, rng.randrange(8, 21), rng.randrange(60), tzinfo=UTC
        )
        customers.record_interaction(
            session,
            customer_id,
            InteractionIn(
                channel=channel,
                direction=direction,
                summary=text,
                occurred_at=moment,
                staff=rng.choice(["Anna (store)", "Jussi (service desk)", "Leena (key accounts)"]),
            ),
        )
        summary.interactions += 1
