"""Benchmark: own-card name check (core.names) against a naive matcher that enumerates every candidate spelling.

Both answer the same question for each pair (is the card token an exact candidate spelling of the ID word?).
The naive baseline builds the full set of candidate strings (product of per-letter options), which is what the
design forbids; the DP walks the options as an automaton. Prints one JSON line last:
value = µs per full ``check_name`` on a long name where every letter has 3 spellings (3**12 candidates),
baseline = µs of the naive exact-only check on the same pair, ratio = baseline / value; target: the DP check stays
under 2 ms per pair even there. Realistic Kazakh pairs are timed too and printed above the JSON line (on those
short names the naive product is small and faster; the DP is chosen for its bounded worst case).
"""

from __future__ import annotations

import itertools
import json
import time

from core.names import LETTER_OPTIONS, IdName, check_name, normalise_card_name

PAIRS = [
    (IdName("ЖАНБОЛАТОВ", "ЖАНБОЛАТ", "ЕРЛАНҰЛЫ"), "ZHANBOLAT ZHANBOLATOV"),
    (IdName("ҚАСЫМОВ", "ҚАСЫМ"), "QASYM QASYMOV"),
    (IdName("ӘЛИХАНОВ", "ӘЛИХАН"), "ALIKHAN ALIKHANOV"),
    (IdName("НҰРСҰЛТАНОВ", "НҰРСҰЛТАН"), "NURSULTAN NURSULTANOV"),
    (IdName("ЖАҢБЫРШЫЕВА", "ЖҰЛДЫЗХАН"), "ZHULDYZKHAN ZHANGBYRSHYEVA"),
    (IdName("ШЫҢҒЫСХАНҰЛЫ", "ӘЙГЕРІМЖАН"), "AIGERIMZHAN SHYNGGYSKHANULY"),
]


def _collapse(s: str) -> str:
    return "".join(ch for i, ch in enumerate(s) if i == 0 or s[i - 1] != ch)


def naive_exact(id_word: str, card_tokens: list[str]) -> bool:
    """Baseline: enumerate every candidate spelling of ``id_word`` and look the card tokens up."""
    options = [LETTER_OPTIONS.get(ch, (ch,)) for ch in id_word.upper()]
    candidates = {_collapse("".join(p)) for p in itertools.product(*options)}
    return any(t in candidates for t in card_tokens)


def naive_check(name: IdName, card: str) -> bool:
    tokens = normalise_card_name(card)
    words = name.surname.replace("-", " ").split() + name.given_name.split()
    return all(naive_exact(w, tokens) for w in words)


WORST = (IdName("ЖЮЯЙЖЮЯЙЖЮЯЙ", "ЖАН"), "ZHYUYAIZHYUYAIZHYUYAI/ZHAN")  # 12 letters x 3 spellings each


def measure(fn: object, pairs: list[tuple[IdName, str]], rounds: int) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for _ in range(rounds):
        for name, card in pairs:
            fn(name, card)
    return (time.perf_counter() - start) / (rounds * len(pairs)) * 1e6


def main() -> None:
    for name, card in PAIRS:  # both must agree that every pair matches
        assert check_name(name, card).outcome == "match", (name, card)
        assert naive_check(name, card), (name, card)
    assert check_name(*WORST).outcome == "match" and naive_check(*WORST)
    typical = min(measure(check_name, PAIRS, 20) for _ in range(3))
    typical_naive = min(measure(naive_check, PAIRS, 20) for _ in range(3))
    value = min(measure(check_name, [WORST], 20) for _ in range(3))
    baseline = measure(naive_check, [WORST], 1)
    target_us = 2000.0
    print(
        f"realistic pairs: check_name (DP, all outcomes) {typical:9.1f} µs/pair, naive {typical_naive:9.1f} µs/pair"
    )
    print(f"3**12-candidate name: check_name {value:9.1f} µs/pair, naive {baseline:9.1f} µs/pair")
    print(
        json.dumps(
            {
                "bench": "name_matching",
                "value": round(value, 1),
                "unit": "us/pair",
                "baseline": round(baseline, 1),
                "ratio": round(baseline / value, 2),
                "target": f"value < {target_us:.0f} us/pair",
                "pass": value < target_us and typical < target_us,
            }
        )
    )


if __name__ == "__main__":
    main()
