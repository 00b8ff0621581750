"""Receipts that tie customers together, resolved for a whole batch at once.

`resolve_buyer` takes such a receipt alone: it merges the customers its identifiers point to
(an anonymous profile into the enrolled customer, or the younger profile into the older one),
attaches the identifiers nobody had, and names the buyer. A bulk import meets hundreds of
these receipts in a batch. Here the same rules are replayed in memory, receipt after receipt
in file order, over the customers involved as they stood before the first of them; what comes
out (profiles, merges with the rows each moved, identities, buyers) is written with a handful
of set operations, and the end state is the one the receipts would have left one by one.

A group of receipts that reaches a case the replay does not model (a customer who asked not
to be remembered, an organisation, three customers on one receipt, a return of a receipt
later in the file) is handed back whole, for the single-receipt road.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from oppiva.customers.identities import NormalIdentity
from oppiva.customers.service import MERGE_FILLABLE
from oppiva.purchases.service import PRIORITY

Key = tuple[str, str]  # (source, external id) of a receipt
Ident = tuple[str, str]  # (kind, value) of an identifier
Row = tuple[str, str, Any]  # (table, column, row id, or the key of a row written now)
RANK = {kind.value: rank for rank, kind in enumerate(PRIORITY)}


@dataclass
class Person:
    """A customer as the rules see it while the batch is replayed."""

    id: int
    enrolled: bool
    start: date
    fields: dict[str, Any]
    kinds: set[str] = field(default_factory=set)
    rows: list[Row] = field(default_factory=list)
    merged_into: int | None = None
    stored: bool = True  # False for a profile made during the replay
    changed: bool = False


@dataclass
class Merge:
    survivor: int
    absorbed: int
    reason: str
    filled: dict[str, Any]
    moved: list[Row]


@dataclass
class Attached:
    """An identifier given to a customer during the replay."""

    ident: NormalIdentity
    customer: int
    primary: bool


@dataclass
class Receipt:
    """What the replay needs of a receipt."""

    key: Key
    day: date
    idents: list[NormalIdentity]
    returns: set[Key]  # receipts of this batch's replay that it returns from


class Unmodelled(Exception):
    """The receipt group needs the single-receipt road."""


@dataclass
class Outcome:
    """What a group of receipts leaves behind, customers named by replay ids."""

    people: dict[int, Person]
    owner: dict[Ident, int]
    buyers: dict[Key, tuple[int | None, str | None]] = field(default_factory=dict)
    attached: list[Attached] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    created: list[int] = field(default_factory=list)  # profiles made, in order

    def root(self, cid: int) -> int:
        """The customer that `cid` now stands in (itself unless merged)."""
        while (into := self.people[cid].merged_into) is not None:
            cid = into
        return cid


def groups(receipts: list[Receipt], owner: dict[Ident, int]) -> list[list[Receipt]]:
    """The receipts split into groups that share no identifier, customer or returned receipt
    (each group's outcome depends on nothing outside it), each in file order."""
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in receipts:
        me = find(("r", r.key))
        for n in r.idents:
            ident = (n.kind.value, n.value)
            parent[find(("i", *ident))] = me
            if ident in owner:
                parent[find(("c", owner[ident]))] = find(me)
        for original in r.returns:
            parent[find(("r", original))] = find(me)
    out: dict[Any, list[Receipt]] = {}
    for r in receipts:
        out.setdefault(find(("r", r.key)), []).append(r)
    return list(out.values())


def replay(
    receipts: list[Receipt],
    owner: dict[Ident, int],
    people: dict[int, Person],
    *,
    recognise: bool,
    new_id: Callable[[], int],
) -> Outcome:
    """The rules of `resolve_buyer` applied to `receipts` in order, starting from `owner`
    (who holds each identifier) and `people` (every customer holding one), both updated in
    place; raises `Unmodelled` for a case left to the single-receipt road (what the group
    changed in `owner` and `people` then concerns nobody else). `new_id` names a new profile:
    above every stored id, in the order made."""
    out = Outcome(people=people, owner=owner)
    position = {r.key: i for i, r in enumerate(receipts)}
    for i, r in enumerate(receipts):
        if any(position.get(k, -1) > i for k in r.returns):
            raise Unmodelled  # the single-receipt road refuses a return before its receipt
        _one(out, r, recognise, new_id)
    return out


def _one(out: Outcome, r: Receipt, recognise: bool, new_id: Callable[[], int]) -> None:
    idents = list({(n.kind.value, n.value): n for n in r.idents}.values())
    if not idents:
        out.buyers[r.key] = (None, None)
        return
    owned = {
        (n.kind.value, n.value): out.root(out.owner[(n.kind.value, n.value)])
        for n in idents
        if (n.kind.value, n.value) in out.owner
    }
    owners = list(dict.fromkeys(owned.values()))
    ranked = sorted(idents, key=lambda n: RANK[n.kind.value])
    unknown = [n for n in idents if (n.kind.value, n.value) not in owned]
    if not owners:
        if not recognise:
            out.buyers[r.key] = (None, None)
            return
        cid = new_id()
        out.people[cid] = Person(cid, enrolled=False, start=r.day, fields={}, stored=False)
        out.created.append(cid)
    elif len(owners) == 1:
        cid = owners[0]
    elif len(owners) > 2:
        raise Unmodelled  # the order of several merges on one receipt is the database's
    else:
        enrolled = [c for c in owners if out.people[c].enrolled]
        if len(enrolled) > 1:
            # Two enrolled people behind one receipt: no merge, the strongest identifier decides.
            first = next(n for n in ranked if (n.kind.value, n.value) in owned)
            out.buyers[r.key] = (owned[(first.kind.value, first.value)], first.kind.value)
            out.people[owned[(first.kind.value, first.value)]].rows.append(
                ("receipt", "customer_id", r.key)
            )
            return
        cid = enrolled[0] if enrolled else min(owners)
        kinds = ", ".join(sorted({n.kind.value for n in idents}))
        for other in owners:
            if other != cid:
                _merge(out, cid, other, f"receipt {r.key[0]}:{r.key[1]} showed {kinds} together")
    person = out.people[cid]
    fresh = set(person.kinds)
    for n in unknown:
        out.owner[(n.kind.value, n.value)] = cid
        out.attached.append(Attached(n, cid, primary=n.kind.value not in fresh))
        person.rows.append(("identity", "customer_id", (n.kind.value, n.value)))
    person.kinds |= {n.kind.value for n in unknown}
    out.buyers[r.key] = (cid, ranked[0].kind.value)
    person.rows.append(("receipt", "customer_id", r.key))


def _merge(out: Outcome, survivor_id: int, absorbed_id: int, reason: str) -> None:
    """`merge_customers` on the replay's people."""
    survivor, absorbed = out.people[survivor_id], out.people[absorbed_id]
    filled: dict[str, Any] = {}
    for name in MERGE_FILLABLE:
        mine, theirs = survivor.fields.get(name), absorbed.fields.get(name)
        if mine is None and theirs is not None:
            survivor.fields[name] = theirs
            filled[name] = theirs.isoformat() if isinstance(theirs, date) else theirs
    if absorbed.start < survivor.start:
        filled["relationship_start"] = [survivor.start.isoformat(), absorbed.start.isoformat()]
        survivor.start = absorbed.start
    out.merges.append(Merge(survivor_id, absorbed_id, reason.strip(), filled, absorbed.rows))
    survivor.rows = survivor.rows + absorbed.rows
    survivor.kinds |= absorbed.kinds
    survivor.changed = survivor.changed or bool(filled)
    absorbed.rows = []
    absorbed.kinds = set()
    absorbed.merged_into = survivor_id
    absorbed.changed = True
