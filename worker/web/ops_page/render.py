"""The operator page as HTML, from the figures of `figures.py` (already masked): every value
escaped, the styles and the refresh script inline, the last hour as an inline SVG chart."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlencode

from hudhud.worker.web.ops_page.figures import LOOKUPS

REFRESH_SECONDS = 10
CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 1200, 170, 16, 20
RECORD_FIELDS = (
    "id", "kind", "channel", "provider", "status", "final", "attempts", "to", "provider_message_id",
    "cost", "currency", "error", "created_at", "updated_at", "at", "in_doubt", "retry_of",
    "redriven_to", "key", "reference", "lane", "expires_at",
)  # fmt: skip
CAMPAIGN_FIELDS = ("recipients", "handed_over", "failed", "suppressed", "batches")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(moment: Any) -> str:
    """An ISO 8601 time as `2026-12-02 18:00:34` (UTC), the whole of it in its title."""
    if not moment:
        return ""
    text = str(moment)
    short = text.replace("T", " ")[:19]
    return f'<time datetime="{esc(text)}" title="{esc(text)}">{esc(short)}</time>'


@cache
def _template() -> Template:
    text = resources.files("hudhud.worker.web.ops_page").joinpath("page.html").read_text("utf-8")
    return Template(text)


def page(live: Mapping[str, Any], found: Mapping[str, Any] | None, *, nonce: str) -> str:
    return _template().substitute(
        nonce=esc(nonce),
        updated=esc(live["at"]),
        refresh_ms=REFRESH_SECONDS * 1000,
        live=live_sections(live),
        form=lookup_form(found),
        found=lookup_result(found),
    )


def live_sections(live: Mapping[str, Any]) -> str:
    return "\n".join(
        (
            _section("Providers", providers(live["providers"])),
            _section("Queues", queues(live)),
            _section("The last hour", last_hour(live["last_hour"]), wide=True),
            _section("Latest failures", failures(live["failures"]), wide=True),
            _section("In doubt, waiting for a decision", in_doubt(live["in_doubt"]), wide=True),
        )
    )


def _section(title: str, body: str, *, wide: bool = False) -> str:
    kind = ' class="wide"' if wide else ""
    return f"<section{kind}><h2>{esc(title)}</h2>{body}</section>"


def _table(headings: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = ()) -> str:
    right = set(numeric)
    head = "".join(f"<th{' class=n' if i in right else ''}>{esc(h)}</th>" for i, h in enumerate(headings))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in right else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _none(text: str) -> str:
    return f'<p class="muted">{esc(text)}</p>'


# --- the live sections -------------------------------------------------------------------


def providers(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return _none("no provider is registered")
    return _table(
        ("provider", "state", "why", "since", "held", "balance"),
        (
            (
                esc(p["name"]),
                '<span class="paused">paused</span>'
                if p["paused"]
                else '<span class="running">sending</span>',
                esc(p["why"] or ""),
                when(p["since"]),
                esc(p["held"]),
                _balance(p["balance"]),
            )
            for p in rows
        ),
        numeric=(4,),
    )


def _balance(balance: Mapping[str, Any] | None) -> str:
    if not balance:
        return '<span class="muted">-</span>'
    amount = f"{esc(balance['amount'])} {esc(balance['currency'] or '')}".strip()
    return f'{amount} <span class="muted">at {when(balance["at"]) or "?"}</span>'


def queues(live: Mapping[str, Any]) -> str:
    table = _table(
        ("queue", "lane", "depth", "oldest"),
        (
            (esc(q["name"]), esc(q["lane"]), esc(q["depth"]), esc(age(q["oldest_age"])))
            for q in live["queues"]
        ),
        numeric=(2, 3),
    )
    totals = (
        f'<p class="muted">scheduled {esc(live["scheduled"])} · in doubt {esc(live["in_doubt_waiting"])}'
        f" · callbacks pending {esc(live['callbacks_pending'])}</p>"
    )
    return table + totals


def age(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def last_hour(hour: Mapping[str, Any]) -> str:
    totals = (
        f'<p class="totals"><span><b>{esc(hour["sent"])}</b> sent</span>'
        f'<span class="failed"><b>{esc(hour["failed"])}</b> failed, rejected or bounced</span></p>'
    )
    legend = (
        '<p class="legend"><span><span class="key sent"></span>handed over</span>'
        '<span><span class="key failed"></span>failed, rejected or bounced</span>'
        "<span>one bar a minute, UTC</span></p>"
    )
    return totals + chart(hour["minutes"]) + legend


def chart(minutes: Sequence[Mapping[str, Any]]) -> str:
    """Stacked bars, one a minute: handed over below, failed above."""
    count = max(1, len(minutes))
    top = max([1, *(int(m["sent"]) + int(m["failed"]) for m in minutes)])
    room = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    step = CHART_WIDTH / count
    base = CHART_TOP + room
    bars = []
    for i, m in enumerate(minutes):
        sent, failed = int(m["sent"]), int(m["failed"])
        x = i * step + 1
        sent_h = room * sent / top
        failed_h = room * failed / top
        tip = f"{str(m['at'])[11:16]} UTC: {sent} sent, {failed} failed"
        bars.append(
            f"<g><title>{esc(tip)}</title>"
            f'<rect class="sent" x="{x:.1f}" y="{base - sent_h:.1f}" width="{step - 2:.1f}" '
            f'height="{sent_h:.1f}"/>'
            f'<rect class="failed" x="{x:.1f}" y="{base - sent_h - failed_h:.1f}" width="{step - 2:.1f}" '
            f'height="{failed_h:.1f}"/></g>'
        )
    labels = (
        f'<text x="0" y="{CHART_HEIGHT - 4}">{count} min ago</text>'
        f'<text x="{CHART_WIDTH}" y="{CHART_HEIGHT - 4}" text-anchor="end">now</text>'
        f'<text x="0" y="{CHART_TOP - 3}">{top} a minute</text>'
    )
    axis = f'<line class="axis" x1="0" x2="{CHART_WIDTH}" y1="{base:.1f}" y2="{base:.1f}"/>'
    return (
        f'<svg viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="messages sent and failed per minute over the last hour">'
        f"{axis}{''.join(bars)}{labels}</svg>"
    )


def _link(message_id: str) -> str:
    query = urlencode({"by": "id", "q": message_id})
    return f'<a href="/ops?{esc(query)}"><code>{esc(message_id)}</code></a>'


def failures(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return _none("no failure among the latest changes")
    return _table(
        ("at", "id", "status", "channel", "provider", "error"),
        (
            (
                when(f["at"]),
                _link(f["id"]),
                f'<span class="failed">{esc(f["status"])}</span>',
                esc(f["channel"]),
                esc(f["provider"]),
                esc(f["error"]),
            )
            for f in rows
        ),
    )


def in_doubt(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return _none("no message is in doubt")
    return _table(
        ("since", "id", "channel", "provider", "error"),
        (
            (when(d["at"]), _link(d["id"]), esc(d["channel"]), esc(d["provider"]), esc(d["error"]))
            for d in rows
        ),
    )


# --- the lookup ------------------------------------------------------------------------


def lookup_form(found: Mapping[str, Any] | None) -> str:
    chosen = found["by"] if found else "id"
    options = "".join(
        f'<option value="{esc(value)}"{" selected" if value == chosen else ""}>{esc(label)}</option>'
        for value, label in LOOKUPS.items()
    )
    return (
        '<form method="get" action="/ops">'
        f'<select name="by" aria-label="look up by">{options}</select>'
        '<input type="text" name="q" aria-label="what to look up" autocomplete="off" '
        'placeholder="a message or campaign id, an idempotency key or a reference">'
        "<button>Look up</button></form>"
    )


def lookup_result(found: Mapping[str, Any] | None) -> str:
    if not found:
        return ""
    asked = f"{esc(LOOKUPS.get(found['by'], found['by']))} <code>{esc(found['query'])}</code>"
    if not found["ids"]:
        return f'<p class="muted">nothing found by {asked}</p>'
    parts = [f'<p class="muted">found by {asked}</p>']
    if len(found["ids"]) > 1:
        parts.append(
            _table(
                ("id", "status", "channel", "provider", "updated"),
                (
                    (
                        _link(r["id"]),
                        esc(r["status"]),
                        esc(r["channel"]),
                        esc(r["provider"]),
                        when(r["updated_at"]),
                    )
                    for r in found["ids"]
                ),
            )
        )
    parts.append(record(found["record"]))
    return "".join(parts)


def record(shown: Mapping[str, Any]) -> str:
    fields = [*RECORD_FIELDS, *(CAMPAIGN_FIELDS if shown.get("kind") == "campaign" else ())]
    items = "".join(
        f"<dt>{esc(name)}</dt><dd>{_value(name, shown.get(name))}</dd>"
        for name in fields
        if shown.get(name) not in (None, "")
    )
    parts = [f"<dl>{items}</dl>"]
    counts = shown.get("recipient_counts")
    if counts:
        parts.append(
            _table(tuple(counts), [tuple(esc(v) for v in counts.values())], numeric=range(len(counts)))
        )
    parts.append(history(shown.get("events") or []))
    return "".join(parts)


def _value(name: str, value: Any) -> str:
    if name == "to":
        return ", ".join(f"<code>{esc(v)}</code>" for v in value) if isinstance(value, list) else esc(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return esc(value)


def history(events: Sequence[Mapping[str, Any]]) -> str:
    if not events:
        return ""
    rows = (
        (
            when(e.get("at")),
            esc(e.get("type")),
            esc(" ".join(f"{k}={v}" for k, v in e.items() if k not in ("at", "type"))),
        )
        for e in events
    )
    return "<h2>History</h2>" + _table(("at", "event", "details"), rows)
