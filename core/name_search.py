"""Finding a driver by name in either script: "Жанболатов", "Zhanbolatov" and "Janbolatov" find each other.

Two steps, both pure:

1. ``search_key(word)`` makes an index key that every spelling of a word shares: the word in Latin letters
   (each Cyrillic letter by its first option in ``core.names.LETTER_OPTIONS``), then its skeleton
   (KH→H, ZH→J, Q→K, runs collapsed) with the vowels (and Y) dropped: Жанболатов, Zhanbolatov and Janbolatov
   all give ``JNBLTV``. Keys are loose on purpose; they only choose candidates.
2. ``word_matches(typed, stored)`` decides: the Latin spellings of the Cyrillic side (every option of every
   letter, ``core.names.best_distance``) against the Latin side, in skeleton form, with one edit allowed in
   words of five letters or more. ``prefix`` lets a typed beginning ("Жанбол") find the whole word.
"""

from __future__ import annotations

import unicodedata

from core.names import LETTER_OPTIONS, best_distance, id_token_pattern, skeleton

MAX_WORDS = 6
MAX_WORD_CHARS = 40
_SKELETON_VOWEL = "*"


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def words(name: str) -> list[str]:
    """The words of a name (letters only, upper case), at most ``MAX_WORDS`` of ``MAX_WORD_CHARS``."""
    cleaned = "".join(ch if ch.isalpha() else " " for ch in unicodedata.normalize("NFC", name).upper())
    return [w[:MAX_WORD_CHARS] for w in cleaned.split()][:MAX_WORDS]


def is_cyrillic(word: str) -> bool:
    return any(ch in LETTER_OPTIONS for ch in word.upper())


def latin_form(word: str) -> str:
    """The word in A-Z: Cyrillic letters by their first Latin option, accents dropped, the rest left out."""
    out = []
    for ch in word.upper():
        options = LETTER_OPTIONS.get(ch)
        if options is not None:
            out.append(options[0])
            continue
        plain = _strip_accents(ch).upper()
        if len(plain) == 1 and "A" <= plain <= "Z":
            out.append(plain)
    return "".join(out)


def search_key(word: str) -> str:
    """The index key of one word (see the module docstring); "" for a word with no letters."""
    shape = skeleton(latin_form(word))
    consonants = shape.replace(_SKELETON_VOWEL, "")
    return consonants or shape


def name_keys(name: str) -> list[str]:
    """The distinct non-empty keys of a name's words, in order."""
    return list(dict.fromkeys(k for k in (search_key(w) for w in words(name)) if k))


def word_matches(typed: str, stored: str, prefix: bool = False) -> bool:
    """Whether the typed word is a spelling of the stored one (or, with ``prefix``, of its beginning)."""
    typed_u, stored_u = typed.upper(), stored.upper()
    if is_cyrillic(stored_u) or not is_cyrillic(typed_u):
        pattern, target = id_token_pattern(stored_u), latin_form(typed_u)
    else:  # a Cyrillic word typed, the stored name in Latin letters
        pattern, target = id_token_pattern(typed_u), latin_form(stored_u)
        prefix = False if len(latin_form(typed_u)) >= len(target) else prefix
        if prefix:  # the typed beginning is the pattern now: compare it with the stored word's beginning
            return any(
                best_distance(pattern, skeleton(target[:n]), _edits(target[:n]), use_skeleton=True) is not None
                for n in range(1, len(target) + 1)
            )
    if not pattern or not target:
        return False
    shape = skeleton(target)
    return best_distance(pattern, shape, _edits(target), prefix=prefix, use_skeleton=True) is not None


def _edits(word: str) -> int:
    return 1 if len(word) >= 5 else 0


def name_matches(typed: str, stored: str) -> bool:
    """Every typed word is a spelling of a different word of the stored name (the last typed word may be a
    beginning); order does not matter."""
    wanted, have = words(typed), words(stored)
    if not wanted:
        return False
    left = list(have)
    for i, word in enumerate(wanted):
        last = i == len(wanted) - 1
        for j, candidate in enumerate(left):
            if word_matches(word, candidate, prefix=last):
                del left[j]
                break
        else:
            return False
    return True
