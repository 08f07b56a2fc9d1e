"""Recognizing a Taqnyat error by its numbers or its words, wherever the reply puts them."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hudhud.worker.providers.errors import AccountError, BalanceError, PermanentError, ProviderError
from hudhud.worker.providers.taqnyat.codes import (
    ACCOUNT_CODES,
    ACCOUNT_STATUS_CODES,
    BALANCE_CODES,
    KNOWN_CODES,
)

# --- recognizing an error by its words -------------------------------------------------
#
# Taqnyat's SMS errors are not documented: the same fault comes as a number in `message`,
# as a number in some code field, or as the table's words alone, in English or Arabic. The
# words are matched after `plain_words` (case folded, punctuation gone, Arabic letters
# folded), balance and account faults first: those must hold a message, never end it.


@dataclass(frozen=True)
class Diagnosis:
    """What a reply's numbers or words name: the error class and Taqnyat's code, if any."""

    kind: type[ProviderError]
    code: int | None = None

    @property
    def holds(self) -> bool:
        """True for an account-level fault (balance, token, IP, API access, account)."""
        return self.kind is not PermanentError


def _kind_of(code: int) -> type[ProviderError]:
    if code in BALANCE_CODES:
        return BalanceError
    if code in ACCOUNT_CODES or code in ACCOUNT_STATUS_CODES:
        return AccountError
    return PermanentError


_ARABIC_FOLDS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ة": "ه",
        "ى": "ي",
        "ؤ": "و",
        "ئ": "ي",
        "ـ": None,  # tatweel
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Eastern Arabic-Indic digits
    }
)
_DECIMAL_POINT = re.compile(r"(?<=\d)[.,٫](?=\d)")
_KEEP = "\x00"


def plain_words(text: str) -> str:
    """`" Your balance is 0"",` -> `your balance is 0`; Arabic-Indic digits -> `0`-`9`.

    Lower case, Arabic letter variants folded, diacritics dropped, punctuation and symbols
    turned into single spaces; a decimal point between digits is kept (`0.000`, `10.0.0.1`).
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_ARABIC_FOLDS)
    text = _DECIMAL_POINT.sub(_KEEP, text.replace(_KEEP, " "))
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Mn":
            continue  # Arabic harakat and other combining marks
        kept.append(" " if category[0] in "PSZC" and char != _KEEP else char)
    return " ".join("".join(kept).split()).replace(_KEEP, ".")


Rule = tuple[type[ProviderError], int | None, re.Pattern[str]]


def _rule(kind: type[ProviderError], code: int | None, *patterns: str) -> Rule:
    return kind, code, re.compile("|".join(f"(?:{p})" for p in patterns))


_BAL = r"(?:balance|credit|credits|funds|points)"
_NOT_ENOUGH = (
    r"(?:not enough|no enough|not sufficient|insufficient|too low|low|lower than|less than"
    r"|does not cover|doesn t cover|not cover)"
)
_EMPTY = r"(?:zero|empty|nil|null|none|finished|exhausted|consumed|depleted|used up|run out|ran out)"
_REFUSED = (
    r"(?:not authori[sz]ed|unauthori[sz]ed|not allowed|not permitted|not whitelisted"
    r"|not white listed|not in (?:the )?white ?list|blocked|denied|forbidden|restricted|rejected|banned)"
)
_OFF = r"(?:disabled|deactivated|turned off|switched off|not enabled|not activated|stopped)"
_BAD = r"(?:invalid|incorrect|wrong|not valid|unknown|malformed|bad)"
_TOKEN = r"(?:bearer|bearer tokens?|tokens?|api ?keys?|access keys?|access tokens?|auth tokens?|secret)"
_ACCOUNT = r"(?:account|user|subscription|customer|client|membership)"
_ACCOUNT_STATE = (
    r"(?:suspended|expired|inactive|not active|deactivated|disabled|blocked|locked|closed"
    r"|terminated|banned|frozen|on hold|not activated)"
)
_AR_WRONG = r"(?:غير صحيح|غير صالح|خاطي|خطا)"

# In order: the first rule whose pattern is found in the words decides.
_WORD_RULES: tuple[Rule, ...] = (
    _rule(
        BalanceError,
        3,
        rf"\b{_BAL}\b(?: \w+){{0,3}}? (?:is |are )?{_NOT_ENOUGH}\b",
        rf"\b{_NOT_ENOUGH}(?: \w+){{0,2}}? {_BAL}\b",
        r"رصيد\w*(?: \w+){0,2}? (?:غير كاف|لا يكفي|لايكفي|ناقص|منخفض)",
    ),
    _rule(
        BalanceError,
        2,
        rf"\b{_BAL} (?:is |= |equals |of |now )?(?:0+(?:\.0+)?(?![.\d])|{_EMPTY}\b)",
        rf"\b(?:no|zero|empty|out of|without) (?:\w+ )?{_BAL}\b",
        r"رصيد\w* (?:يساوي |هو )?(?:0+(?:\.0+)?(?![.\d])|صفر|منتهي|نفد|فارغ)",
        r"(?:لا يوجد|لايوجد|نفاد|نفد|نفاذ|انتهى|انتهاء) (?:\w+ )?\w*رصيد",
    ),
    _rule(
        AccountError,
        102,
        rf"\bip\b(?: address)?(?: [\w.]+){{0,3}}? (?:is |are |has been )?{_REFUSED}\b",
        rf"\b(?:{_REFUSED}|untrusted|unknown|invalid|disallowed) (?:source )?ip\b",
        r"\bip (?:address )?(?:white ?list|restriction)",
        r"(?:الاي بي|اي بي|الايبي|\bip\b)(?: [\w.]+){0,3}? (?:غير مصرح|محظور|ممنوع)",
    ),
    _rule(
        AccountError,
        104,
        rf"\b{_TOKEN}\b(?: \w+){{0,3}}? (?:is |are )?(?:{_BAD}|expired|revoked|missing|not found"
        r"|not recognized|required|empty)\b",
        rf"\b(?:{_BAD}|expired|revoked|missing|no) (?:\w+ ){{0,2}}?{_TOKEN}\b",
        rf"(?:مفتاح|التوكن|توكن)\w*(?: \w+){{0,3}}? (?:{_AR_WRONG}|منتهي)",
    ),
    _rule(
        AccountError,
        101,
        rf"\bapi\b(?: \w+){{0,4}}? (?:{_OFF}|not active|inactive|suspended|blocked|off)\b",
        r"\b(?:disabled|deactivated|inactive|suspended|blocked) (?:\w+ )?api\b",
        rf"\bsending\b(?: \w+){{0,3}}? {_OFF}\b",
        r"(?:الارسال|ارسال)(?: \w+){0,4}? (?:معطل|موقوف|غير مفعل)",
        r"(?:الربط|الواجهه|\bapi\b)(?: \w+){0,2}? (?:معطل|موقوف|غير مفعل)",
    ),
    _rule(
        AccountError,
        None,
        rf"\b{_ACCOUNT}\b(?: \w+){{0,3}}? (?:is |has been |was )?{_ACCOUNT_STATE}\b",
        rf"\b{_ACCOUNT_STATE} (?:\w+ )?{_ACCOUNT}\b",
        r"(?:الحساب|حساب)\w*(?: \w+){0,2}? (?:موقوف|معلق|منتهي|غير نشط|غير مفعل|معطل|محظور|مغلق)",
    ),
    _rule(
        AccountError,
        None,
        rf"\b(?:{_BAD}|expired|missing|no) (?:\w+ )?(?:credentials?|login|username|user name|password"
        r"|authentication|authorization)\b",
        r"\b(?:credentials?|authentication|authorization|login)\b(?: \w+){0,2}? (?:invalid|incorrect"
        r"|wrong|failed|failure|required|missing|expired|denied)\b",
        r"\b(?:unauthenticated|not authenticated)\b",
        r"بيانات (?:الدخول|الاعتماد)(?: \w+)? غير صحيح",
    ),
    _rule(
        PermanentError,
        14,
        r"\b(?:invalid|incorrect|wrong|unknown|unapproved|unregistered|bad) (?:sender|caller ?id|from)\b",
        r"\berror from\b",
        r"\b(?:sender|sender name|caller ?id)\b(?: \w+){0,3}? (?:is )?(?:invalid|incorrect|wrong"
        r"|not approved|not active|inactive|not found|unknown|not registered|not valid|rejected"
        r"|not allowed|not authori[sz]ed|unauthori[sz]ed|blocked|pending|disabled|expired)\b",
        r"خطا في المرسل\b",
        r"(?:اسم المرسل|هويه المتصل|المرسل) غير (?:صحيح|صالح|مفعل|معتمد)",
    ),
    _rule(
        AccountError,
        None,
        r"\b(?:unauthori[sz]ed|forbidden|access denied|permission denied|no permission|not authori[sz]ed)\b",
        r"غير مصرح",
    ),
    _rule(
        PermanentError,
        15,
        r"\b(?:recipients?|mobiles?|mobile s|numbers?|number s|phones?|phone numbers?|emails?"
        r"|email address(?:es)?|destinations?)\b(?: \w+){0,4}? (?:is |are )?(?:not specified"
        r"|incorrect|invalid|not valid|wrong)\b",
        r"\b(?:invalid|incorrect|wrong) (?:recipients?|mobiles?|numbers?|phones?|emails?|destinations?)\b",
        r"المرسل لها (?:\w+ )?غير صحيح",
        r"(?:الارقام|الرقم|ارقام|البريد الالكتروني)(?: \w+){0,3}? غير صحيح",
    ),
    _rule(
        PermanentError,
        16,
        r"\berror subject\b",
        rf"\b{_BAD} subject\b",
        r"\bsubject\b(?: \w+){0,2}? (?:invalid|incorrect|wrong|error|not valid|too long)\b",
        r"خطا في عنوان",
    ),
    _rule(
        PermanentError,
        17,
        r"\berror (?:msg|audio)\b",
        rf"\b{_BAD} (?:message|msg|body|audio|audio file|text|content)\b",
        r"\b(?:message|msg|audio file|content)\b(?: \w+){0,2}? (?:invalid|incorrect|not valid|too long"
        r"|not found)\b",
        r"خطا في (?:الرساله|الارسال او الملف|الملف)",
        r"الملف الصوتي",
    ),
    _rule(
        BalanceError,
        None,
        r"\bbalance\b",
        r"\b(?:top ?up|recharge)\b",
        r"رصيد",
    ),
)

_BARE_NUMBER = re.compile(r"\d{1,6}")
_NAMED_NUMBER = re.compile(
    r"\b(?:error ?code|err ?code|error no|error number|error|code|err)(?: no)? (\d{1,6})\b"
)
_CODE_KEYS = frozenset(
    {"code", "errorcode", "errcode", "errorno", "errornumber", "errno", "errnum", "codeerror"}
)
_TEXT_KEYS = frozenset(
    {
        "message",
        "reason",
        "messageen",
        "messagear",
        "error",
        "errors",
        "description",
        "detail",
        "details",
        "msg",
        "errormessage",
        "errormsg",
        "errordescription",
        "errortext",
        "statusmessage",
        "statustext",
    }
)
# Containers that hold a success's data, not an error's words.
_SUCCESS_KEYS = frozenset({"data", "status", "senders", "accepted", "rejected"})
_MAX_DEPTH = 4
_MAX_LEAVES = 64
_MAX_TEXT = 500


def words_diagnosis(text: str) -> Diagnosis | None:
    """The documented error a text names, by its words alone (English or Arabic)."""
    words = plain_words(text[:_MAX_TEXT])
    if not words:
        return None
    for kind, code, pattern in _WORD_RULES:
        if pattern.search(words):
            return Diagnosis(kind, code)
    return None


def small_number(value: Any) -> int | None:
    """A code given as an int, an integral number or a digit string (at most 6 digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        small = finite and -1_000_000 < value < 1_000_000
        return int(value) if small and value == int(value) else None
    if isinstance(value, str):
        digits = plain_words(value[:_MAX_TEXT])
        return int(digits) if _BARE_NUMBER.fullmatch(digits) else None
    return None


@dataclass
class Clues:
    """The numbers and words an error reply carries, wherever they are."""

    numbers: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def clues(data: Any) -> Clues:
    """Numbers from code fields and bare-number messages, words from message-like fields."""
    found = Clues()
    leaves = 0

    def walk(value: Any, key: str, depth: int) -> None:
        nonlocal leaves
        if leaves >= _MAX_LEAVES or depth > _MAX_DEPTH:
            return
        if isinstance(value, Mapping):
            for name, item in value.items():
                name_key = re.sub(r"[^a-z]", "", str(name).lower())
                if not (name_key in _SUCCESS_KEYS and isinstance(item, Mapping | list)):
                    walk(item, name_key, depth + 1)
            return
        if isinstance(value, list):
            for item in value:
                walk(item, key, depth + 1)
            return
        leaves += 1
        if key in _CODE_KEYS:
            number = small_number(value)
            if number is not None:
                found.numbers.append(number)
        elif key in _TEXT_KEYS or depth == 0:
            _read_text(value, found)

    walk(data, "", 0)
    return found


def _read_text(value: Any, found: Clues) -> None:
    number = small_number(value)
    if number is not None:
        found.numbers.append(number)
        return
    if not isinstance(value, str) or not value.strip():
        return
    named = _NAMED_NUMBER.search(plain_words(value[:_MAX_TEXT]))
    if named and int(named.group(1)) in KNOWN_CODES:
        found.numbers.append(int(named.group(1)))
    found.texts.append(value.strip())


def diagnose(data: Any) -> Diagnosis | None:
    """The documented error a reply names, by number or by words; None when it names none.

    A documented number decides, except that words naming a balance or account fault win
    over a number of an input fault: an account-level fault must never end a message."""
    found = clues(data)
    numbered = [Diagnosis(_kind_of(n), n) for n in found.numbers if n in KNOWN_CODES]
    by_number = next((d for d in numbered if d.holds), numbered[0] if numbered else None)
    named = [d for d in map(words_diagnosis, found.texts) if d is not None]
    by_words = next((d for d in named if d.holds), named[0] if named else None)
    if by_words is not None and by_words.holds and not (by_number is not None and by_number.holds):
        return by_words
    return by_number or by_words


def _first_number(data: Any) -> int | None:
    numbers = clues(data).numbers
    return numbers[0] if numbers else None
