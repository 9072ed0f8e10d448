"""Own-card check: does the Latin cardholder name on a bank card belong to the person on the (Cyrillic) ID?

Implements fines.md §9.2 (design; conservative; unverified):

1. Each Cyrillic letter of the ID name has a few Latin spellings (``LETTER_OPTIONS``: ICAO 9303 plus the
   Kazakh letters Ә Ғ Қ Ң Ө Ұ Ү Һ І and common variants).
2. Both sides are normalised: NFKD without accents, upper case, A-Z only, ``/ - . '`` as separators, doubled
   letters collapsed, titles (MR, MRS…) dropped while two other tokens remain; homoglyphs in typed data are folded (Cyrillic І/Һ/А… on the
   card side, Latin I/H/A… inside a Cyrillic ID word).
3. The patronymic is not required; surname and given-name tokens are compared as an unordered set
   (``NAME SURNAME`` or ``SURNAME/NAME``); a card name at the 26-character limit may end in a truncated token.
4. Outcomes: MATCH (every token equals some candidate spelling), PROBABLE (a token within Levenshtein 1 of a
   candidate when at least 5 letters long, or equal in "skeleton" form: KH→H, ZH→J, Q→K, vowels as one class;
   or the given name as an initial only; or a given name cut off by truncation; or an unexplained extra word on
   the card), MISMATCH (anything else), UNAVAILABLE (no usable name from the card).

Candidate spellings are never enumerated: a token is matched by a dynamic programme that walks the per-letter
options as a small automaton, so the cost grows with ``letters × card length``, not with the product of options.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LETTER_OPTIONS: dict[str, tuple[str, ...]] = {
    "А": ("A",),
    "Б": ("B",),
    "В": ("V",),
    "Г": ("G",),
    "Д": ("D",),
    "Е": ("E", "YE"),
    "Ё": ("E", "YO"),
    "Ж": ("ZH", "J", "Z"),
    "З": ("Z",),
    "И": ("I", "Y"),
    "Й": ("I", "Y", "J"),
    "К": ("K",),
    "Л": ("L",),
    "М": ("M",),
    "Н": ("N",),
    "О": ("O",),
    "П": ("P",),
    "Р": ("R",),
    "С": ("S",),
    "Т": ("T",),
    "У": ("U", "W"),
    "Ф": ("F",),
    "Х": ("KH", "H", "X"),
    "Ц": ("TS", "C"),
    "Ч": ("CH",),
    "Ш": ("SH",),
    "Щ": ("SHCH", "SCH", "SH"),
    "Ъ": ("",),
    "Ы": ("Y", "I"),
    "Ь": ("",),
    "Э": ("E",),
    "Ю": ("IU", "YU", "JU"),
    "Я": ("IA", "YA", "JA"),
    "Ә": ("A", "AE"),
    "Ғ": ("G", "GH"),
    "Қ": ("K", "Q"),
    "Ң": ("N", "NG"),
    "Ө": ("O", "OE"),
    "Ұ": ("U",),
    "Ү": ("U", "UE"),
    "Һ": ("H", "KH"),
    "І": ("I",),
}

# Latin letters typed inside a Cyrillic word may stand for the Cyrillic letter they look like.
_LATIN_LOOKALIKE_OF: dict[str, tuple[str, ...]] = {
    "A": ("А", "Ә"),
    "B": ("В",),
    "C": ("С",),
    "E": ("Е",),
    "H": ("Н", "Һ"),
    "I": ("І",),
    "K": ("К", "Қ"),
    "M": ("М",),
    "O": ("О", "Ө"),
    "P": ("Р",),
    "T": ("Т",),
    "X": ("Х",),
    "Y": ("У", "Ү"),
}

# Cyrillic letters on the card side (typed or OCR'd data) folded to the Latin letter they look like.
_CYRILLIC_TO_LATIN_LOOKALIKE = str.maketrans(
    {
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "У": "Y",
        "І": "I",
        "Һ": "H",
        "Ј": "J",
        "Ѕ": "S",
    }
)

_SEPARATORS = "/-.'’`,_"
_VOWELS = frozenset("AEIOUY")
_VOWEL_CLASS = "*"


class NameMatch(enum.StrEnum):
    """Outcome of the own-card name check."""

    MATCH = "match"  # accept
    PROBABLE = "probable"  # officer confirms visually; logged
    MISMATCH = "mismatch"  # refuse, or per policy
    UNAVAILABLE = "unavailable"  # no cardholder name from the card: per policy


@dataclass(frozen=True, slots=True)
class NameCheck:
    outcome: NameMatch
    reason: str


@dataclass(frozen=True, slots=True)
class NameMatchPolicy:
    """Tunable limits of the matcher (defaults per fines.md §9)."""

    card_name_limit: int = 26  # EMV 5F20: a name this long may have been cut off
    fuzzy_min_len: int = 5  # Levenshtein / skeleton only for card tokens at least this long
    max_edits: int = 1
    truncated_min_len: int = 3  # a truncated last token must keep this many letters to count as a spelling
    max_card_chars: int = 64  # longer input is refused (MISMATCH) instead of analysed
    max_card_tokens: int = 8
    max_id_tokens: int = 6
    titles: frozenset[str] = frozenset(
        {"MR", "MRS", "MS", "MIS", "MISTER", "DR", "PROF"}
    )  # after doubles collapse
    placeholders: frozenset[str] = frozenset(
        {
            "CARDHOLDER",
            "CARD HOLDER",
            "VALUED CUSTOMER",
            "CUSTOMER",
            "VISA CARDHOLDER",
            "CARDHOLDER VISA",
            "NO NAME",
        }
    )


DEFAULT_POLICY = NameMatchPolicy()


@dataclass(frozen=True, slots=True)
class IdName:
    """The name on the ID document: surname, given name, optional patronymic (any script)."""

    surname: str
    given_name: str
    patronymic: str | None = None

    def __post_init__(self) -> None:
        for key in ("surname", "given_name", "patronymic"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or len(value) > 100):
                raise ValueError(f"IdName.{key} must be a string of at most 100 characters")
        if not _words(self.surname):
            raise ValueError("IdName.surname is empty")

    @classmethod
    def parse(cls, text: str) -> IdName:
        """Split ``"SURNAME GIVEN [PATRONYMIC…]"`` as printed on a Kazakh ID card."""
        parts = text.split()
        if not parts:
            raise ValueError("ID name is empty")
        return cls(parts[0], parts[1] if len(parts) > 1 else "", " ".join(parts[2:]) or None)

    def __str__(self) -> str:
        return " ".join(p for p in (self.surname, self.given_name, self.patronymic) if p)


# ---- normalisation -----------------------------------------------------------------------------------------


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _collapse_doubles(token: str) -> str:
    return "".join(ch for i, ch in enumerate(token) if i == 0 or token[i - 1] != ch)


def _words(text: str) -> list[str]:
    cleaned = "".join(" " if ch in _SEPARATORS else ch for ch in text)
    return cleaned.split()


def normalise_card_name(card_name: str, policy: NameMatchPolicy = DEFAULT_POLICY) -> list[str]:
    """Card name → list of tokens (A-Z, doubles collapsed, titles dropped), in card order.

    A title is dropped only while two other tokens remain: ``MR IVAN PETROV`` loses ``MR``, but in a two-token
    name such as ``II/DR`` the ``DR`` must be the given name (a name can spell like a title)."""
    text = card_name.upper().translate(_CYRILLIC_TO_LATIN_LOOKALIKE)
    text = _strip_accents(text).upper()
    text = "".join(
        ch if ("A" <= ch <= "Z") else " " if (ch in _SEPARATORS or ch.isspace()) else "" for ch in text
    )
    tokens = [_collapse_doubles(t) for t in text.split()]
    kept = [t for t in tokens if t not in policy.titles]
    return kept if len(kept) >= 2 else tokens


Pattern = tuple[tuple[str, ...], ...]  # per source letter, its Latin options


def _letter_options(ch: str, in_cyrillic_word: bool) -> tuple[str, ...] | None:
    if ch in LETTER_OPTIONS:
        return LETTER_OPTIONS[ch]
    latin = _strip_accents(ch).upper()
    if len(latin) != 1 or not "A" <= latin <= "Z":
        return None
    if not in_cyrillic_word:
        return (latin,)
    opts = [latin]
    for cyr in _LATIN_LOOKALIKE_OF.get(latin, ()):
        opts.extend(o for o in LETTER_OPTIONS[cyr] if o not in opts)
    return tuple(opts)


def id_token_pattern(token: str) -> Pattern:
    """The per-letter Latin options of one ID word (Cyrillic, Latin or mixed)."""
    t = unicodedata.normalize("NFC", token).upper()
    cyrillic = any(ch in LETTER_OPTIONS for ch in t)
    out = []
    for ch in t:
        opts = _letter_options(ch, cyrillic)
        if opts is not None:
            out.append(opts)
    return tuple(out)


# ---- streaming filters applied to candidate spellings ------------------------------------------------------

FilterState = tuple[str, str]  # (pending digraph head, last emitted)
Step = Callable[[FilterState, str], tuple[FilterState, str]]
Flush = Callable[[FilterState], str]


def _collapse_step(state: FilterState, ch: str) -> tuple[FilterState, str]:
    return (("", ch), "") if ch == state[1] else (("", ch), ch)


def _collapse_flush(_state: FilterState) -> str:
    return ""


_DIGRAPH_HEADS = {"K": "H", "Z": "J"}  # KH → H, ZH → J


def _skeleton_emit(last: str, ch: str) -> tuple[str, str]:
    c = _VOWEL_CLASS if ch in _VOWELS else ("K" if ch == "Q" else ch)
    return (last, "") if c == last else (c, c)


def _skeleton_step(state: FilterState, ch: str) -> tuple[FilterState, str]:
    pending, last = state
    out = ""
    if pending:
        if ch == "H":
            last, o = _skeleton_emit(last, _DIGRAPH_HEADS[pending])
            return ("", last), o
        last, out = _skeleton_emit(last, pending)
    if ch in _DIGRAPH_HEADS:
        return (ch, last), out
    last, o = _skeleton_emit(last, ch)
    return ("", last), out + o


def _skeleton_flush(state: FilterState) -> str:
    pending, last = state
    return _skeleton_emit(last, pending)[1] if pending else ""


def _apply(text: str, step: Step, flush: Flush) -> str:
    state: FilterState = ("", "")
    out = []
    for ch in text:
        state, o = step(state, ch)
        out.append(o)
    out.append(flush(state))
    return "".join(out)


def skeleton(text: str) -> str:
    """Latin text in skeleton form: KH→H, ZH→J, Q→K, every vowel one class, runs collapsed."""
    return _apply(text, _skeleton_step, _skeleton_flush)


def best_distance(
    pattern: Pattern, target: str, max_edits: int, prefix: bool = False, use_skeleton: bool = False
) -> int | None:
    """Smallest edit distance (≤ ``max_edits``) between ``target`` and any filtered candidate spelling, or None.

    Candidates are the strings formed by picking one option per letter of ``pattern``; they pass through the
    collapse filter (or the skeleton filter) before comparison, and ``target`` must already be in that form.
    With ``prefix`` the target only has to match the beginning of a candidate (a truncated card name).
    Runs a dynamic programme over (filter state, position in target) → fewest edits; nothing is enumerated.
    """
    step: Step = _skeleton_step if use_skeleton else _collapse_step
    flush: Flush = _skeleton_flush if use_skeleton else _collapse_flush
    m = len(target)
    best: int | None = None

    def close(frontier: dict[tuple[FilterState, int], int]) -> dict[tuple[FilterState, int], int]:
        # insertions: target letters absent from the candidate
        out = dict(frontier)
        for (fs, j), e in frontier.items():
            for extra in range(1, max_edits - e + 1):
                if j + extra > m:
                    break
                key = (fs, j + extra)
                if out.get(key, max_edits + 1) > e + extra:
                    out[key] = e + extra
        return out

    def consume(configs: dict[int, int], emitted: str) -> dict[int, int]:
        # configs: j -> edits; emitted characters are compared with the target
        for x in emitted:
            nxt: dict[int, int] = {}
            for j, e in configs.items():
                moves = []
                if j < m and target[j] == x:
                    moves.append((j + 1, e))
                if e < max_edits:
                    if j < m:
                        moves.append((j + 1, e + 1))  # substitution
                    moves.append((j, e + 1))  # candidate letter not in target
                for nj, ne in moves:
                    if nxt.get(nj, max_edits + 1) > ne:
                        nxt[nj] = ne
            configs = nxt
            if not configs:
                break
        return configs

    frontier: dict[tuple[FilterState, int], int] = close({(("", ""), 0): 0})
    for options in pattern:
        nxt: dict[tuple[FilterState, int], int] = {}
        for (fs, j), e in frontier.items():
            if prefix and j == m:
                best = e if best is None else min(best, e)
                continue
            for opt in options:
                state = fs
                configs = {j: e}
                for ch in opt:
                    state, emitted = step(state, ch)
                    if emitted:
                        configs = consume(configs, emitted)
                        if prefix and m in configs:
                            best = configs[m] if best is None else min(best, configs[m])
                    if not configs:
                        break
                for nj, ne in configs.items():
                    key = (state, nj)
                    if nxt.get(key, max_edits + 1) > ne:
                        nxt[key] = ne
        frontier = close(nxt)
        if not frontier:
            return best
    for (fs, j), e in frontier.items():
        configs = _close_positions(consume({j: e}, flush(fs)), m, max_edits)
        if m in configs:
            best = configs[m] if best is None else min(best, configs[m])
    return best


def _close_positions(configs: dict[int, int], m: int, max_edits: int) -> dict[int, int]:
    """Insertion closure over target positions only (used after the final flush)."""
    out = dict(configs)
    for j, e in configs.items():
        for extra in range(1, max_edits - e + 1):
            if j + extra <= m and out.get(j + extra, max_edits + 1) > e + extra:
                out[j + extra] = e + extra
    return out


# ---- token and name level ----------------------------------------------------------------------------------


class _Level(enum.IntEnum):
    NONE = 0
    PROBABLE = 1
    EXACT = 2


@dataclass(frozen=True, slots=True)
class _IdToken:
    text: str
    role: str  # "surname" | "given name" | "patronymic"
    pattern: Pattern
    initials: frozenset[str]


@dataclass(frozen=True, slots=True)
class _PairResult:
    level: _Level
    how: str


@dataclass
class _Assignment:
    levels: list[_Level] = field(default_factory=list)
    hows: list[str] = field(default_factory=list)
    used: list[int | None] = field(default_factory=list)


def _id_tokens(name: IdName) -> tuple[list[_IdToken], list[_IdToken]]:
    def make(word: str, role: str) -> _IdToken | None:
        pattern = id_token_pattern(word)
        if not pattern:
            return None
        return _IdToken(word, role, pattern, frozenset(o[0] for o in pattern[0] if o))

    required = [t for w in _words(name.surname) if (t := make(w, "surname"))]
    required += [t for w in _words(name.given_name) if (t := make(w, "given name"))]
    optional = [t for w in _words(name.patronymic or "") if (t := make(w, "patronymic"))]
    return required, optional


def _pair(tok: _IdToken, card: str, truncated_last: bool, policy: NameMatchPolicy) -> _PairResult:
    if best_distance(tok.pattern, card, 0) == 0:
        return _PairResult(_Level.EXACT, f"{tok.role} {tok.text} = {card}")
    if (
        truncated_last
        and len(card) >= policy.truncated_min_len
        and best_distance(tok.pattern, card, 0, prefix=True) == 0
    ):
        return _PairResult(
            _Level.EXACT, f"{tok.role} {tok.text} = {card}… (cut at {policy.card_name_limit} characters)"
        )
    if len(card) >= policy.fuzzy_min_len:
        if best_distance(tok.pattern, card, policy.max_edits, prefix=truncated_last) is not None:
            return _PairResult(_Level.PROBABLE, f"{tok.role} {tok.text} ≈ {card} (one letter differs)")
        if best_distance(tok.pattern, skeleton(card), 0, prefix=truncated_last, use_skeleton=True) == 0:
            return _PairResult(_Level.PROBABLE, f"{tok.role} {tok.text} ≈ {card} (same consonant skeleton)")
    if tok.role == "given name" and len(card) == 1 and card in tok.initials:
        return _PairResult(_Level.PROBABLE, f"{tok.role} {tok.text} given as initial {card} only")
    return _PairResult(_Level.NONE, "")


def _best_assignment(
    required: Sequence[_IdToken], table: list[list[_PairResult]], n_card: int, truncated: bool
) -> _Assignment | None:
    """Assign required ID tokens to distinct card tokens maximising (weakest link, total): branch and bound."""

    def level_of(i: int, c: int | None) -> _Level:
        return table[i][c].level if c is not None else _Level.PROBABLE

    choices: list[list[int | None]] = []
    for i, tok in enumerate(required):
        row = table[i]
        ranked = sorted((c for c in range(n_card) if row[c].level > _Level.NONE), key=lambda c: -row[c].level)
        opts: list[int | None] = list(ranked)
        if truncated and tok.role == "given name":
            opts.append(None)  # cut off by the card's length limit
        if not opts:
            return None
        choices.append(opts)
    best: list[int | None] | None = None
    best_key = (-1, -1)
    top = [max(level_of(i, c) for c in choices[i]) for i in range(len(required))]
    combo: list[int | None] = []

    def search(i: int, low: int, total: int) -> None:
        nonlocal best, best_key
        bound = (min([low, *top[i:]]), total + sum(top[i:]))
        if bound <= best_key:
            return  # cannot beat what we have
        if i == len(required):
            best, best_key = list(combo), (low, total)
            return
        for c in choices[i]:
            if c is not None and c in combo:
                continue
            lv = level_of(i, c)
            combo.append(c)
            search(i + 1, min(low, lv), total + lv)
            combo.pop()

    search(0, _Level.EXACT, 0)
    if best is None:
        return None
    hows = [
        table[i][c].how if c is not None else f"{required[i].role} {required[i].text} cut off on the card"
        for i, c in enumerate(best)
    ]
    return _Assignment([level_of(i, c) for i, c in enumerate(best)], hows, best)


def check_name(
    id_name: IdName | str, card_name: str | None, policy: NameMatchPolicy = DEFAULT_POLICY
) -> NameCheck:
    """Compare the ID holder's name with the cardholder name read from the card."""
    name = IdName.parse(id_name) if isinstance(id_name, str) else id_name
    if card_name is None:
        return NameCheck(NameMatch.UNAVAILABLE, "the card gave no cardholder name")
    if len(card_name) > policy.max_card_chars:
        return NameCheck(NameMatch.MISMATCH, f"card name longer than {policy.max_card_chars} characters")
    card = normalise_card_name(card_name, policy)
    if not card:
        return NameCheck(NameMatch.UNAVAILABLE, f"the card name {card_name!r} holds no letters")
    if " ".join(card) in {" ".join(normalise_card_name(p, policy)) for p in policy.placeholders}:
        return NameCheck(NameMatch.UNAVAILABLE, f"the card name {card_name!r} is a placeholder, not a person")
    if len(card) > policy.max_card_tokens:
        return NameCheck(NameMatch.MISMATCH, f"card name has more than {policy.max_card_tokens} parts")
    required, optional = _id_tokens(name)
    if not required or len(required) > policy.max_id_tokens:
        return NameCheck(NameMatch.MISMATCH, f"ID name {name} cannot be compared (0 or too many parts)")
    truncated = len(card_name.strip()) >= policy.card_name_limit
    last = len(card) - 1
    table = [[_pair(tok, c, truncated and k == last, policy) for k, c in enumerate(card)] for tok in required]
    best = _best_assignment(required, table, len(card), truncated)
    if best is None:
        missing = [
            f"{tok.role} {tok.text}"
            for i, tok in enumerate(required)
            if all(r.level == _Level.NONE for r in table[i])
        ]
        what = ", ".join(missing) if missing else "the name parts"
        return NameCheck(NameMatch.MISMATCH, f"{what} not found in card name {' '.join(card)!r}")
    extras = []
    for k, c in enumerate(card):
        if k in best.used:
            continue
        explained = any(
            _pair(tok, c, truncated and k == last, policy).level > _Level.NONE for tok in optional
        )
        explained = explained or any(len(c) == 1 and c in tok.initials for tok in optional)
        if not explained:
            extras.append(c)
    hows = "; ".join(best.hows)
    if min(best.levels) == _Level.EXACT and not extras:
        return NameCheck(NameMatch.MATCH, hows)
    if extras:
        hows += f"; card has extra name part(s) {' '.join(extras)}"
    return NameCheck(NameMatch.PROBABLE, hows)
