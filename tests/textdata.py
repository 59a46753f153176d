"""Real text for the tests: Debian's `fortunes` (installed by `make tools`), and a template generator
of support tickets such as a synthetic-data pipeline writes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

FORTUNES = Path("/usr/share/games/fortunes")
TEMPLATES = (  # no run of more than 6 fixed words: fresh fills share no 8-gram with each other
    'hi my order {n} from {name} has not arrived and shows {m} updates for "{item}"',
    "hello i was charged {n} dollars twice on card {m} so please refund {name}",
    'the app crashes on page {n} with "{item}" since {name} updated it to {m}',
    "please change the address of order {n} to {m} main street before {name} ships it",
    'i want to return item {n} "{item}" because it broke after {m} days',
    "my account {n} was locked after {m} login attempts and {name} never called back",
)
NAMES = ("Maria", "John", "Aiko", "Pedro", "Fatima", "Olga", "Kwame", "Lena", "Ravi", "Chen")
ITEMS = ("blue mug", "desk lamp", "travel case", "phone stand", "yoga mat", "coffee grinder")


def fortunes(minimum_words: int = 8, language: str = "en") -> list[str]:
    """Every fortune in `language` (Debian's fortunes, fortunes-de, -es, -ru, …) of at least
    `minimum_words` words that shares no 8 words in a row with another, whitespace flattened, in a
    fixed order."""
    directory = FORTUNES if language == "en" else FORTUNES / language
    files = sorted(p for p in directory.glob("*") if p.is_file() and not p.is_symlink()
                   and p.suffix not in (".dat", ".u8")) if directory.is_dir() else []
    assert len(files) > 3, f"Debian's fortunes ({language}) are missing from {directory}: run `make tools`"
    texts = []
    for path in files:
        texts += [" ".join(t.split()) for t in path.read_text(encoding="utf-8", errors="replace").split("\n%\n")]
    kept: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for text in sorted({t for t in texts if len(t.split()) >= minimum_words and not re.search(r"\s{3}|[|_]{3}", t)}):
        words = re.findall(r"\w+", text.lower())
        grams = {tuple(words[i:i + 8]) for i in range(len(words) - 7)}
        if not grams & seen:  # the corpus repeats quotes across files, reworded or attributed anew
            kept.append(text)
        seen |= grams
    return kept


def tickets(rows: int, rng: np.random.Generator) -> list[str]:
    """Tickets from the templates with fresh fills: numbers, names and quoted items vary."""
    return [TEMPLATES[rng.integers(len(TEMPLATES))].format(
        n=rng.integers(1000, 99999), m=rng.integers(10, 999), name=NAMES[rng.integers(len(NAMES))],
        item=ITEMS[rng.integers(len(ITEMS))]) for _ in range(rows)]
