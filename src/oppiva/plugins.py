"""Extension points: each domain plugs its personal data into merge, export and erasure here.

Declared once, the way Datasette's `hookspecs.py` does, with pluggy; a domain (built in or
installed under the `oppiva` entry-point group) implements the hooks it needs and the core
never imports it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pluggy
from sqlalchemy import Table
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from oppiva.customers.models import CustomerMerge, Interaction

hookspec = pluggy.HookspecMarker("oppiva")
hookimpl = pluggy.HookimplMarker("oppiva")

BUILTIN_PLUGINS = (
    "oppiva.customers.hooks",
    "oppiva.privacy.hooks",
    "oppiva.access.hooks",
    "oppiva.purchases.hooks",
    "oppiva.segments.hooks",
    "oppiva.loyalty.hooks",
    "oppiva.value.hooks",
    "oppiva.offers.hooks",
)


@dataclass(frozen=True)
class CustomerLink:
    """A column that ties a table's rows to a customer: merge moves them, unmerge moves them back."""

    table: Table
    column: str


class Hooks:
    """The hook specifications."""

    @hookspec
    def oppiva_customer_links(self) -> list[CustomerLink]:  # type: ignore[empty-body]
        """Columns holding a customer id, whose rows follow the customer through merges."""

    @hookspec
    def oppiva_derived_links(self) -> list[CustomerLink]:  # type: ignore[empty-body]
        """Customer columns of tables the analysis computes and replaces at every run: they
        do not follow merges (the next analysis sees the merged customer as one)."""

    @hookspec
    def oppiva_folded_on_merge(self) -> list[str]:  # type: ignore[empty-body]
        """Tables whose rows a merge cannot simply move: `oppiva_before_merge` folds them. A
        bulk import leaves a merge that would move such a row to the full merge, hooks and all."""

    @hookspec
    def oppiva_export_person(  # type: ignore[empty-body]
        self, session: Session, customer_id: int
    ) -> dict[str, Any]:
        """This domain's part of a subject-access export: section name to JSON-ready data."""

    @hookspec
    def oppiva_erase_person(self, session: Session, customer_id: int) -> None:
        """Remove or blank every personal datum of the person that this domain holds."""

    @hookspec
    def oppiva_before_merge(self, session: Session, merge: CustomerMerge) -> None:
        """Two customers are about to merge (no row has moved yet): fold what cannot simply
        move, such as two accounts of one programme, and remember it for the unmerge."""

    @hookspec
    def oppiva_after_merge(self, session: Session, merge: CustomerMerge) -> None:
        """The absorbed customer's rows now belong to the survivor: re-evaluate what they change."""

    @hookspec
    def oppiva_after_unmerge(self, session: Session, merge: CustomerMerge) -> None:
        """An unmerge moved the rows back: restore what `oppiva_before_merge` folded."""

    @hookspec
    def oppiva_interaction_recorded(self, session: Session, interaction: Interaction) -> None:
        """A contact was put on the timeline; react in the same transaction (e.g. award the
        behaviour points of a feedback or a referral)."""

    @hookspec
    def oppiva_customer_card(  # type: ignore[empty-body]
        self, session: Session, customer_id: int
    ) -> dict[str, Any]:
        """This domain's sections of the customer card (`GET /v1/customers/{id}`)."""


@lru_cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with the built-in domains and installed plugins."""
    import importlib

    pm = pluggy.PluginManager("oppiva")
    pm.add_hookspecs(Hooks)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name)
    pm.load_setuptools_entrypoints("oppiva")
    return pm


def derived_links() -> list[CustomerLink]:
    """Every registered customer-id column of analysis output."""
    links = [link for group in plugin_manager().hook.oppiva_derived_links() for link in group]
    return sorted(links, key=lambda link: (link.table.name, link.column))


def folded_on_merge() -> set[str]:
    """Every table some domain folds itself when two customers merge."""
    return {name for group in plugin_manager().hook.oppiva_folded_on_merge() for name in group}


def customer_links() -> list[CustomerLink]:
    """Every registered customer-id column, in a stable order."""
    links = [link for group in plugin_manager().hook.oppiva_customer_links() for link in group]
    return sorted(links, key=lambda link: (link.table.name, link.column))


def customer_card(session: Session, customer_id: int) -> dict[str, Any]:
    """The domains' sections of one customer's card, merged by section name."""
    sections: dict[str, Any] = {}
    for part in plugin_manager().hook.oppiva_customer_card(
        session=session, customer_id=customer_id
    ):
        sections.update(part)
    return sections
