"""Hypothesis strategies of bad sends, shared by the bad-input tests.

`bad_send(channel)` draws the fields of one send on `channel` that are good except for one
thing, together with the field an error about it must name. With `python=True` the values
may also be Python objects (bytes, naive datetimes, tuples) that only the Python producer
API can receive; otherwise they are plain JSON types, as a foreign producer sends them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from hudhud.config import Settings
from hudhud.worker.producer import messages
from hudhud.worker.producer.validation import example_time, field_name

CHANNELS = ("sms", "email", "voice")
SETTINGS = {
    "TAQNYAT_SENDER": "HUDHUD",
    "TAQNYAT_CALLER_ID": "966500000001",
    "TAIFA_FROM": "noreply@example.com",
    "TAQNYAT_EMAIL_FROM": "noreply@example.com",
}
# Fixed texts that error messages contain, e.g. the example number: a drawn value that is
# part of them is not a leak.
TEMPLATE_TEXT = f"966500000000 {example_time()} 8 to 15 digits at most 10000 24 MiB"


def settings(redis_url: str) -> Settings:
    return Settings(HUDHUD_REDIS_URL=redis_url, **SETTINGS)


def good_fields(channel: str, seed: int = 0) -> dict[str, Any]:
    """A send that passes every check."""
    if channel == "sms":
        return {"to": [f"9665{seed:08d}"], "body": f"Your code is {seed}"}
    if channel == "voice":
        return {"to": [f"9665{seed:08d}"], "audio_url": "https://cdn.example.com/hello.mp3"}
    return {"to": [f"person{seed}@example.com"], "subject": "Hello", "text": f"Hi there {seed}"}


@dataclass
class BadSend:
    """One bad send: its channel, fields, positional arguments and the field(s) to blame."""

    channel: str
    fields: dict[str, Any]
    blame: tuple[str, ...]
    args: list[Any] = field(default_factory=list)
    secret: str | None = None  # a drawn value that no error text may contain

    def names(self, reported: str) -> bool:
        """Whether `reported` names the bad field (or an item or part of it)."""
        return any(reported == name or reported.startswith((f"{name}[", f"{name}.")) for name in self.blame)

    def leaks(self, text: str) -> bool:
        return self.secret is not None and self.secret in text


# --- building blocks ------------------------------------------------------------------
DIGITS = "0123456789"
surrogate = st.characters(categories=["Cs"])
short_text = st.text(max_size=12)
not_unicode = st.builds(lambda a, s, b: a + s + b, short_text, surrogate, short_text)
with_nul = st.builds(lambda a, b: f"{a}\x00{b}", short_text, short_text)
multi_line = st.builds(
    lambda a, nl, b: f"x{a}{nl}{b}", short_text, st.sampled_from(["\n", "\r", "\r\n"]), short_text
)
blank = st.sampled_from([" ", "   ", "\t", " \n "])


def digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=low, max_size=high)


def too_long(limit: int) -> st.SearchStrategy[str]:
    return st.integers(limit + 1, limit + 40).map(lambda n: "x" * n)


def non_strings(python: bool) -> st.SearchStrategy[Any]:
    """Values of a wrong type that still count as given (no None, "" or [])."""
    base = st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        st.lists(st.integers(), min_size=1, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "to"]), st.integers(), min_size=1, max_size=2),
    )
    if not python:
        return base
    return st.one_of(
        base,
        st.binary(min_size=1, max_size=8),
        st.tuples(st.integers()),
        st.just(object()),
    )


def bad_text(
    limit: int, python: bool, *, single_line: bool = False, empty: bool = True
) -> st.SearchStrategy[Any]:
    """A text field that must be refused (`empty`: "" is refused, not taken as "not given")."""
    options = [non_strings(python), blank, not_unicode, with_nul, too_long(limit)]
    if single_line:
        options.append(multi_line)
    if empty:
        options.append(st.just(""))
    return st.one_of(*options)


def _inside(number: str, at: int, char: str) -> str:
    cut = 1 + at % (len(number) - 1)
    return number[:cut] + char + number[cut:]


def bad_number_text() -> st.SearchStrategy[str]:
    """Phone numbers as strings that are not 8-15 digits in international format."""
    letters = st.sampled_from(list(string.ascii_letters + "+-() /."))
    return st.one_of(
        digits(8, 15).map(lambda d: "+" + d),
        digits(8, 15).map(lambda d: "00" + d),
        # inside the digits: a space before or after them is only trimmed
        st.builds(lambda d, i, c: _inside(d, i, c), digits(8, 15), st.integers(0, 15), letters),
        digits(1, 7),
        digits(16, 22),
        digits(7, 14).map(lambda d: "0" + d),
        st.sampled_from(["966 500 000 000", "966-500-000-000", "٩٦٦٥٠٠٠٠٠٠٠٠", "9665OOOOOOOO", "+"]),
        not_unicode,
    )


def bad_number(python: bool) -> st.SearchStrategy[Any]:
    return st.one_of(
        bad_number_text(),
        st.integers(max_value=9_999_999),
        st.integers(min_value=10**15),
        st.sampled_from([966500000000.0, True, False, None, ["966500000000"], {"n": "966500000000"}]),
        *([st.just(b"966500000000")] if python else []),
    )


def bad_email_text() -> st.SearchStrategy[str]:
    local = st.text(alphabet=string.ascii_lowercase + DIGITS, min_size=1, max_size=10)
    return st.one_of(
        local.map(lambda x: f"{x}example.com"),
        local.map(lambda x: f"{x}@"),
        local.map(lambda x: f"@{x}.com"),
        local.map(lambda x: f"{x}@example"),
        local.map(lambda x: f"{x} y@example.com"),
        local.map(lambda x: f"{x}@@example.com"),
        local.map(lambda x: f"{x}@exa_mple.com"),
        local.map(lambda x: f"{x}@-example.com"),
        local.map(lambda x: f"{x}@exämple.com"),
        local.map(lambda x: f"{x}@example.com, b@example.com"),
        st.just("a" * 65 + "@example.com"),
        st.just("a@" + "b" * 250 + ".com"),
        not_unicode.map(lambda x: f"{x}@example.com"),
    )


def bad_email(python: bool) -> st.SearchStrategy[Any]:
    return st.one_of(bad_email_text(), non_strings(python))


def bad_url_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [
                "ftp://cdn.example.com/a.mp3",
                "cdn.example.com/a.mp3",
                "//cdn.example.com/a.mp3",
                "http://",
                "https:// cdn.example.com/a.mp3",
                "https://cdn.example .com/a.mp3",
                "javascript:alert(1)",
                "file:///etc/passwd",
                "http://" + "a" * 2050 + ".mp3",
            ]
        ),
        blank,
        not_unicode.map(lambda x: f"https://cdn.example.com/{x}.mp3"),
    )


def bad_at_text() -> st.SearchStrategy[str]:
    now = datetime.now(UTC)
    return st.one_of(
        st.integers(1, 10**6).map(
            lambda m: (datetime.now(UTC) + timedelta(minutes=m)).replace(tzinfo=None).isoformat()
        ),
        st.integers(1, 10**6).map(lambda m: (datetime.now(UTC) - timedelta(minutes=m)).isoformat()),
        st.integers(400, 3000).map(lambda d: (datetime.now(UTC) + timedelta(days=d)).isoformat()),
        st.sampled_from(
            [
                "2031-01-31",
                "2031-01-31T10:00",
                f"{now.year + 1}-13-01T10:00:00Z",
                "tomorrow",
                "0001-01-01T00:00:00+05:00",
                "9999-12-31T23:59:59-05:00",
                "2031-01-31T10:00:00+25:00",
                "2031-01-31T10:00:00+03:00Z",
                "1700000000",
            ]
        ),
        st.text(alphabet=string.ascii_letters, min_size=1, max_size=10),
        blank,
        not_unicode,
    )


def bad_at(python: bool) -> st.SearchStrategy[Any]:
    options = [bad_at_text(), non_strings(python)]
    if python:
        options.append(st.just(datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)))
        options.append(st.just(datetime.now(UTC) - timedelta(hours=1)))
    return st.one_of(*options)


def bad_key_text() -> st.SearchStrategy[str]:
    return st.one_of(too_long(200), multi_line, blank, not_unicode, with_nul)


FIELD_NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
ODD_NAME = st.one_of(
    st.text(min_size=1, max_size=10).filter(lambda n: field_name(n) is None),
    not_unicode,
    st.sampled_from(["966500000000", "person@example.com", "to ", "", "-x"]),
)


# --- one bad thing per send -----------------------------------------------------------
def _put(base: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    fields = dict(base)
    if value is None:
        fields.pop(name, None)
    else:
        fields[name] = value
    return fields


def _secret(value: Any) -> str | None:
    if isinstance(value, str) and len(value.strip()) >= 8 and value not in TEMPLATE_TEXT:
        return value
    return None


@st.composite
def _bad_recipients(
    draw: st.DrawFn, base: dict[str, Any], channel: str, python: bool
) -> tuple[dict[str, Any], Any]:
    item = bad_number(python) if channel != "email" else bad_email(python)
    shape = draw(st.sampled_from(["in_list", "bare", "container", "missing"]))
    if shape == "in_list":
        value = draw(item)
        goods = list(base["to"])
        goods.insert(draw(st.integers(0, len(goods))), value)
        return _put(base, "to", goods), value
    if shape == "bare":
        value = draw(bad_number_text() if channel != "email" else bad_email_text())
        return _put(base, "to", value), value
    if shape == "container":
        value = draw(
            st.one_of(
                st.integers(),
                st.booleans(),
                st.floats(allow_nan=False),
                st.dictionaries(
                    st.sampled_from(["966500000000", "a@example.com"]), st.integers(), min_size=1
                ),
                *([st.binary(min_size=1)] if python else []),
            )
        )
        return _put(base, "to", value), None
    return _put(base, "to", draw(st.sampled_from([None, "", []]))), None


@st.composite
def _unknown(draw: st.DrawFn, base: dict[str, Any], channel: str) -> tuple[dict[str, Any], str]:
    allowed = {"sms": messages.SMS_FIELDS, "voice": messages.VOICE_FIELDS, "email": messages.EMAIL_FIELDS}[
        channel
    ]
    odd = draw(st.booleans())
    name = draw((ODD_NAME if odd else FIELD_NAME).filter(lambda n: n not in allowed))
    value = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans()))
    return {**base, name: value}, "fields" if odd else name


def _corruptions(channel: str, python: bool) -> dict[str, st.SearchStrategy[Any]]:
    """Per field: a strategy of values that must be refused for it."""
    common: dict[str, st.SearchStrategy[Any]] = {
        "at": bad_at(python),
        "key": st.one_of(bad_key_text(), non_strings(python)),
    }
    if channel == "sms":
        return {
            **common,
            "body": bad_text(10_000, python),
            "sender": st.one_of(
                non_strings(python), blank, multi_line, too_long(64), not_unicode, st.just("HU\x01D")
            ),
        }
    if channel == "voice":
        return {
            **common,
            "audio_url": st.one_of(bad_url_text(), non_strings(python), st.just("")),
            "caller_id": bad_number(python).filter(lambda v: v not in (None, "")),
        }
    attachment_item = st.one_of(
        non_strings(python).filter(lambda v: not isinstance(v, dict)),
        st.sampled_from(
            [
                {"filename": "../etc/passwd", "content_base64": "QQ=="},
                {"filename": "a/b.txt", "content_base64": "QQ=="},
                {"filename": "a\\b.txt", "content_base64": "QQ=="},
                {"filename": "a\x00.txt", "content_base64": "QQ=="},
                {"filename": "a\nb.txt", "content_base64": "QQ=="},
                {"filename": "", "content_base64": "QQ=="},
                {"content_base64": "QQ=="},
                {"filename": 7, "content_base64": "QQ=="},
                {"filename": "a.txt"},
                {"filename": "a.txt", "content_base64": "***"},
                {"filename": "a.txt", "content_base64": "QQ="},
                {"filename": "a.txt", "content_base64": "QQ==\n"},
                {"filename": "a.txt", "content_base64": "data:text/plain;base64,QQ=="},
                {"filename": "a.txt", "content_base64": ["QQ=="]},
                {"filename": "a.txt", "content_base64": "QQ==", "content_type": 5},
                {"filename": "a.txt", "content_base64": "QQ==", "path": "/tmp/a.txt"},
                {"filename": "a.txt", "content_base64": "QQ==", "966500000000": "x"},
            ]
        ),
        not_unicode.map(lambda n: {"filename": n, "content_base64": "QQ=="}),
        st.text(alphabet="!*@#", min_size=1, max_size=8).map(
            lambda c: {"filename": "a.txt", "content_base64": c}
        ),
    )
    good_attachment = {"filename": "ok.txt", "content_base64": "aGVsbG8="}
    return {
        **common,
        "subject": bad_text(998, python, single_line=True),
        "text": st.one_of(non_strings(python), blank, not_unicode, with_nul),
        "html": st.one_of(non_strings(python), blank, not_unicode, with_nul),
        "from": bad_email(python),
        "provider": st.one_of(
            st.text(min_size=1, max_size=10).filter(lambda p: p not in messages.EMAIL_PROVIDERS),
            non_strings(python),
        ),
        "cc": st.one_of(
            st.lists(bad_email(python), min_size=1, max_size=3),
            bad_email_text(),
            st.integers(),
            st.dictionaries(st.just("a@example.com"), st.integers(), min_size=1),
        ),
        "bcc": st.lists(bad_email(python), min_size=1, max_size=3),
        "reply_to": st.one_of(bad_email(python), st.just(["a@example.com"])),
        "tags": st.one_of(
            st.integers(),
            st.booleans(),
            st.dictionaries(st.just("tag"), st.integers(), min_size=1),
            st.lists(
                st.one_of(non_strings(python), multi_line, too_long(100), not_unicode, st.just("")),
                min_size=1,
                max_size=3,
            ),
        ),
        "headers": st.one_of(
            st.integers(),
            st.lists(st.just("X-A=b"), min_size=1),
            st.text(min_size=1, max_size=8),
            st.dictionaries(
                st.one_of(st.sampled_from(["", "X A", "X:A", "X-Ä", "a" * 77, "X\x00"]), not_unicode),
                st.just("v"),
                min_size=1,
                max_size=1,
            ),
            st.dictionaries(
                st.just("X-Campaign"),
                st.one_of(non_strings(python), multi_line, too_long(998), not_unicode),
                min_size=1,
            ),
        ),
        "header": st.one_of(
            st.integers(),
            st.booleans(),
            st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=10),
            st.lists(
                st.one_of(st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), st.integers()),
                min_size=1,
                max_size=3,
            ),
            st.sampled_from([["=v"], ["X A=v"], ["X-A=a\nb"]]),
        ),
        "attachments": st.one_of(
            st.lists(attachment_item, min_size=1, max_size=2).map(lambda items: [good_attachment, *items]),
            st.sampled_from(["QQ==", {"filename": "a.txt", "content_base64": "QQ=="}, 7, True]),
        ),
        "campaign": bad_text(100, python, single_line=True, empty=False),
    }


@st.composite
def bad_send(draw: st.DrawFn, channel: str, *, python: bool = False, positional: bool = False) -> BadSend:
    """A send on `channel` with exactly one bad field (or, with `positional`, maybe bad args)."""
    base = good_fields(channel, draw(st.integers(0, 99_999_999)))
    corruptions = _corruptions(channel, python)
    kinds = ["to", "unknown", *corruptions]
    if channel == "email":
        kinds.append("taqnyat_extra")
    if positional:
        kinds.append("args")
    kind = draw(st.sampled_from(kinds))
    if kind == "to":
        fields, value = draw(_bad_recipients(base, channel, python))
        return BadSend(channel, fields, ("to",), secret=_secret(value))
    if kind == "unknown":
        fields, name = draw(_unknown(base, channel))
        return BadSend(channel, fields, (name,))
    if kind == "args":
        args = draw(st.lists(st.one_of(st.text(max_size=5), st.integers()), min_size=1, max_size=3))
        return BadSend(channel, base, ("args",), args=args)
    if kind == "taqnyat_extra":
        name = draw(st.sampled_from(["cc", "bcc", "reply_to", "tags", "headers", "attachments"]))
        value = {
            "cc": ["c@example.com"],
            "bcc": ["b@example.com"],
            "reply_to": "r@example.com",
            "tags": ["t"],
            "headers": {"X-A": "b"},
            "attachments": [{"filename": "a.txt", "content_base64": "QQ=="}],
        }[name]
        return BadSend(channel, {**base, "provider": "taqnyat", name: value}, (name,))
    value = draw(corruptions[kind])
    blame: tuple[str, ...] = (kind,)
    if kind == "header":
        blame = ("header", "headers")
    if kind == "text" and value == "":
        blame = ("text",)
    return BadSend(channel, _put(base, kind, value), blame, secret=_secret(value))


def bad_sends(*, python: bool = False, positional: bool = False) -> st.SearchStrategy[BadSend]:
    return st.sampled_from(CHANNELS).flatmap(lambda c: bad_send(c, python=python, positional=positional))
