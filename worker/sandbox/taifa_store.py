"""The Taifa Mail emails held in memory, with listing, search and the updates feed."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from hudhud.worker.sandbox.clock import micros
from hudhud.worker.sandbox.taifa_model import Email

UPDATES_PAGE = 50
SEARCH_PREFIXES = ("to", "from", "status", "domain", "tag")


Check = Callable[[Email], bool]


@dataclass
class Filters:
    """Structured filters of a search, lower-cased (tags kept as given); all must match."""

    to: list[str] = field(default_factory=list)
    from_: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, query: str, status: str | None = None, tag: str | None = None) -> Filters:
        """Split `q` into inline tokens (`to:`, `from:`, `status:`, `domain:`, `tag:`) and words."""
        filters = cls()
        for token in query.split():
            prefix, sep, value = token.partition(":")
            prefix = prefix.lower()
            if sep and value and prefix in SEARCH_PREFIXES:
                name = "from_" if prefix == "from" else prefix
                getattr(filters, name).append(value if name == "tag" else value.lower())
            else:
                filters.words.append(token.lower())
        if status:
            filters.status.append(status.lower())
        if tag:
            filters.tag.append(tag)
        return filters

    def checks(self, now: float) -> list[Check]:
        """One predicate per filter; an empty list matches every email."""
        return [
            *(_to_has(term) for term in self.to),
            *(_from_has(term) for term in self.from_),
            *(_domain_has(term) for term in self.domain),
            *(_tagged(tag) for tag in self.tag),
            *(_mentions(word) for word in self.words),
            *(_status_is(status, now) for status in self.status),
        ]


def _to_has(term: str) -> Check:
    return lambda email: any(term in address.lower() for address in email.to_addresses)


def _from_has(term: str) -> Check:
    return lambda email: term in email.from_address.lower()


def _domain_has(term: str) -> Check:
    return lambda email: term in email.from_address.rpartition("@")[2].lower()


def _tagged(tag: str) -> Check:
    return lambda email: tag in email.request.tags


def _mentions(word: str) -> Check:
    def check(email: Email) -> bool:
        return (
            word in email.from_address.lower()
            or word in email.request.subject.lower()
            or any(word in address.lower() for address in email.to_addresses)
        )

    return check


def _status_is(status: str, now: float) -> Check:
    return lambda email: email.status_at(now) == status


class EmailStore:
    """Emails by id and in creation order (creation times strictly increase)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Email] = {}
        self.order: list[Email] = []
        self.created: list[float] = []
        self.waiting: list[Email] = []  # scheduled ones: their changes come long after creation
        self.max_step = 0.0
        self.last_us = 0

    def __len__(self) -> int:
        return len(self.order)

    def stamp(self, now: float) -> float:
        """`now`, nudged so that no two emails share a creation or change time.

        The updates feed pages by time alone; distinct times keep a batch from tying.
        """
        self.last_us = max(micros(now), self.last_us + 1)
        return self.last_us / 1_000_000

    def add(self, email: Email) -> None:
        if email.scheduled_at is not None:
            # Emails scheduled for the same instant start a microsecond apart (see stamp).
            email.start_at = email.scheduled_at + len(self.order) % 1_000_000 / 1_000_000
            self.waiting.append(email)
        self.by_id[email.id] = email
        self.order.append(email)
        self.created.append(email.created_at)
        self.max_step = max(self.max_step, email.step)

    def get(self, email_id: str) -> Email | None:
        return self.by_id.get(email_id)

    def search(self, filters: Filters, now: float) -> Iterator[Email]:
        """Matching emails, newest first."""
        checks = filters.checks(now)
        newest_first = reversed(self.order)
        if not checks:
            return newest_first
        return (email for email in newest_first if all(check(email) for check in checks))

    def page_of_all(self, page: int, limit: int) -> tuple[list[Email], int]:
        """One page of every email, newest first, without walking the others."""
        total = len(self.order)
        stop = max(total - page * limit, 0)
        return self.order[max(stop - limit, 0) : stop][::-1], total

    def scheduled(self, now: float) -> list[Email]:
        """Emails still waiting for their send time, soonest first."""
        waiting = [email for email in self.waiting if email.status_at(now) == "scheduled"]
        return sorted(waiting, key=lambda email: email.start_at)

    def changed_since(self, since: float) -> Iterator[Email]:
        """Every email that may have changed after `since`: an unscheduled email's last change
        comes at most two steps after its creation, so older ones are skipped by bisection."""
        first = bisect_left(self.created, since - 2 * self.max_step - 1e-3)
        yield from (email for email in self.order[first:] if email.scheduled_at is None)
        yield from self.waiting

    def updates(self, since_us: int, now: float) -> list[tuple[int, Email]]:
        """Emails whose status changed after `since_us` (microseconds), oldest change first."""
        changed = sorted(
            (
                (at, email)
                for email in self.changed_since(since_us / 1_000_000)
                if (at := micros(email.updated_at(now))) > since_us
            ),
            key=lambda pair: pair[0],
        )
        if len(changed) <= UPDATES_PAGE:
            return changed
        page = changed[:UPDATES_PAGE]
        last = page[-1][0]
        if changed[UPDATES_PAGE][0] != last:
            return page
        # Never split a group of equal times across pages: `since` is exclusive.
        trimmed = [pair for pair in page if pair[0] != last]
        return trimmed or [pair for pair in changed if pair[0] == last]


def paginate(emails: Iterable[Email], page: int, limit: int) -> tuple[list[Email], int]:
    """The emails of one page and the total count of all of them."""
    start, stop = page * limit, (page + 1) * limit
    chosen: list[Email] = []
    total = 0
    for email in emails:
        if start <= total < stop:
            chosen.append(email)
        total += 1
    return chosen, total
