"""The Taifa Mail emails held in memory, with listing, search and the updates feed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from worker.sandbox.clock import micros
from worker.sandbox.taifa_model import Email

UPDATES_PAGE = 50
SEARCH_PREFIXES = ("to", "from", "status", "domain", "tag")


@dataclass
class Filters:
    """Structured filters of a search; every one given must match."""

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
            if sep and value and prefix.lower() in SEARCH_PREFIXES:
                name = "from_" if prefix.lower() == "from" else prefix.lower()
                getattr(filters, name).append(value)
            else:
                filters.words.append(token.lower())
        if status:
            filters.status.append(status)
        if tag:
            filters.tag.append(tag)
        return filters

    def matches(self, email: Email, now: float) -> bool:
        sender = email.from_address.lower()
        recipients = [address.lower() for address in email.to_addresses]
        domain = sender.rpartition("@")[2]
        return (
            all(any(term.lower() in r for r in recipients) for term in self.to)
            and all(term.lower() in sender for term in self.from_)
            and all(term.lower() in domain for term in self.domain)
            and all(tag in email.request.tags for tag in self.tag)
            and all(_has_word(word, sender, email.request.subject, recipients)
                    for word in self.words)
            and all(email.status_at(now) == status.lower() for status in self.status)
        )


def _has_word(word: str, sender: str, subject: str, recipients: list[str]) -> bool:
    return word in sender or word in subject.lower() or any(word in r for r in recipients)


class EmailStore:
    """Emails by id and in creation order."""

    def __init__(self) -> None:
        self.by_id: dict[str, Email] = {}
        self.order: list[Email] = []
        self.last_us = 0

    def stamp(self, now: float) -> float:
        """`now`, nudged so that no two emails share a creation or change time.

        The updates feed pages by time alone; distinct times keep a batch from tying.
        """
        self.last_us = max(micros(now), self.last_us + 1)
        return self.last_us / 1_000_000

    def __len__(self) -> int:
        return len(self.order)

    def add(self, email: Email) -> None:
        if email.scheduled_at is not None:
            # Emails scheduled for the same instant start a microsecond apart (see stamp).
            email.start_at = email.scheduled_at + len(self.order) % 1_000_000 / 1_000_000
        self.by_id[email.id] = email
        self.order.append(email)

    def get(self, email_id: str) -> Email | None:
        return self.by_id.get(email_id)

    def newest_first(self) -> Iterator[Email]:
        return reversed(self.order)

    def search(self, filters: Filters, now: float) -> Iterator[Email]:
        return (email for email in self.newest_first() if filters.matches(email, now))

    def scheduled(self, now: float) -> list[Email]:
        """Emails still waiting for their send time, soonest first."""
        waiting = [email for email in self.order if email.status_at(now) == "scheduled"]
        return sorted(waiting, key=lambda email: email.start_at)

    def updates(self, since_us: int, now: float) -> list[tuple[int, Email]]:
        """Emails whose status changed after `since_us` (microseconds), oldest change first."""
        changed = sorted(
            ((at, email) for email in self.order if (at := micros(email.updated_at(now))) > since_us),
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
