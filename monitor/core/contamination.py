"""Evaluation contamination: how much of an evaluation set its training set already holds.

Synthetic-on-synthetic evaluation flatters a model: an evaluation set made by the training set's
generator repeats its rows, phrases and templates, so its score measures how well the model learned
the generator. A `Scan` indexes the evaluation set once (exact row hashes, MinHash signatures of
its texts, n-grams and text skeletons), then the training table streams past that index chunk by
chunk: memory is bounded by the evaluation set, however large the training table.

- exact duplicates: an evaluation row whose normalised features equal a training row's;
- near duplicates: texts whose word-bigram Jaccard similarity with a training text is at least
  `near` (candidates from MinHash LSH, `rensa`, then verified exactly);
- dirty items: texts sharing an n-gram of words with the training texts, as in the contamination
  analyses of the GPT-3 paper (Brown et al. 2020, appendix C: n is the 5th percentile of the
  evaluation texts' lengths, at least 8 and at most 13);
- shared templates: texts whose skeleton (numbers, quoted spans, addresses and capitalised names
  masked) occurs in the training texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.core.channels import TOKEN
from monitor.core.columns import Columns, Reservoir
from monitor.core.spec import Spec

NEAR = 0.7  # word-bigram Jaccard of a near duplicate: one or two words changed in a short text
NUM_PERM, BANDS = 100, 20  # LSH candidates from Jaccard ~0.55: 97% recall at 0.7, verified exactly after
MAX_CANDIDATES = 20  # training candidates verified per evaluation text and chunk
MIN_SKELETON_TOKENS = 4  # shorter skeletons ("thanks #") are shared by chance
EXAMPLES = 5
SEED = 7

_SKELETON = [(re.compile(p), mask) for p, mask in (
    (r"https?://\S+|www\.\S+", " <url> "),
    (r"\S+@\S+\.\w+", " <email> "),
    (r'"[^"]*"|“[^”]*”|«[^»]*»', " <quote> "),
    (r"(?<=[\w,;:] )[A-Z][a-z]+", "<name>"),  # a capitalised word inside a sentence
    (r"\w*\d[\w.,:/-]*", "<num>"),  # numbers, amounts, dates, ids
)]


def tokens(text: str | None) -> list[str]:
    return TOKEN.findall(text.lower()) if text else []


def shingles(words: list[str]) -> set[str]:
    """Word bigrams (the word itself for a one-word text): what near duplicates share."""
    return {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)} if len(words) > 1 else set(words)


def skeleton(text: str | None) -> str:
    """A text with what varies between the instances of a template masked.

    >>> skeleton('Hi, my order 4471 from Maria never came: "blue mug", see https://x.io/o/4471')
    'hi my order <num> from <name> never came <quote> see <url>'
    """
    if not text:
        return ""
    for pattern, mask in _SKELETON:
        text = pattern.sub(mask, text)
    return " ".join(re.findall(r"<\w+>|\w+", text.lower()))


def ngram_size(lengths: np.ndarray) -> int:
    """GPT-3's n: the 5th percentile of the texts' lengths in words, within [8, 13]."""
    return int(np.clip(np.percentile(lengths, 5), 8, 13)) if len(lengths) else 13


def _ngrams(words: list[str], n: int) -> list[int]:
    return [hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)]


def _row_keys(columns: Columns, names: list[str]) -> list[int]:
    """A hash per row of its normalised features (texts by their lowercase words): equal rows, equal keys."""
    return [hash(row) for row in zip(*(_normalised(columns[name]) for name in names), strict=True)]


def _normalised(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "f":
        return [None if v != v else round(v, 9) for v in values.tolist()]  # NaN: missing
    return [" ".join(tokens(v)) if isinstance(v, str) else v for v in values.tolist()]


@dataclass
class Finding:
    """How many evaluation rows a check flags, and examples of them."""

    rows: np.ndarray  # a flag per evaluation row
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return float(self.rows.mean()) if len(self.rows) else 0.0


class Scan:
    """Indexes an evaluation table; `add` streams training chunks past it; the findings say which
    evaluation rows the training data already held.

    >>> spec = Spec(model="m", features={"text": "text"})
    >>> evaluation = {"text": np.array(["where is my order 12 from Maria please help",
    ...                                 "the app crashes when I open settings on my phone"], dtype=object)}
    >>> scan = Scan(spec, evaluation)
    >>> scan.add({"text": np.array(["where is my order 98 from John please help"], dtype=object)})
    >>> scan.templates.rows.tolist(), scan.exact.rows.tolist()
    ([True, False], [False, False])
    """

    def __init__(self, spec: Spec, evaluation: Columns, near: float = NEAR, sample: int = 10_000) -> None:
        from rensa import RMinHash, RMinHashLSH

        self.spec = spec
        self.near = near
        self.texts = [name for name, kind in spec.features.items() if kind == "text"]
        self.tabular = [name for name, kind in spec.features.items() if kind != "text"]
        self.evaluation = evaluation
        rows = len(next(iter(evaluation.values())))
        self.train_rows = 0
        self.train_sample = Reservoir(sample, SEED)  # for closeness: a reference sample, and held-out rows
        self.exact = Finding(np.zeros(rows, dtype=bool))
        self.near_duplicates = Finding(np.zeros(rows, dtype=bool))
        self.dirty = Finding(np.zeros(rows, dtype=bool))
        self.templates = Finding(np.zeros(rows, dtype=bool))
        self._exact_keys = _index(_row_keys(evaluation, list(spec.features)))
        text = self._texts(evaluation)
        self._text = text
        words = [tokens(t) for t in text]
        self.lengths = np.array([len(w) for w in words])
        self.n = ngram_size(self.lengths[self.lengths > 0])
        self.short = (self.lengths > 0) & (self.lengths < self.n)  # too short to share an n-gram
        grams = [(g, row) for row, w in enumerate(words) for g in _ngrams(w, self.n)]
        self._grams = np.array([g for g, _ in grams], dtype=np.int64)
        self._gram_rows = np.array([r for _, r in grams], dtype=np.int64)
        self._shingles = [shingles(w) for w in words]
        self._skeletons = [skeleton(t) for t in text]
        self._skeleton_keys = _index([hash(s) if len(s.split()) >= MIN_SKELETON_TOKENS else 0
                                      for s in self._skeletons], skip=0)
        self.skeleton_counts = np.zeros(rows, dtype=np.int64)  # training texts with each row's skeleton
        self._minhash = RMinHash
        self._lsh = RMinHashLSH(0.5, NUM_PERM, BANDS)  # its own threshold is unused: bands decide
        present = [row for row, s in enumerate(self._shingles) if s]
        if present:
            matrix = RMinHash.digest_matrix_from_token_sets([sorted(self._shingles[r]) for r in present], NUM_PERM,
                                                            SEED)
            self._lsh.insert_matrix(matrix, 0)
        self._lsh_rows = np.array(present, dtype=np.int64)  # LSH key -> evaluation row

    def add(self, chunk: Columns) -> None:
        """Streams one chunk of training rows past the evaluation index."""
        rows = len(next(iter(chunk.values())))
        self.train_rows += rows
        self.train_sample.add(chunk)
        self._match(self.exact, self._exact_keys, _row_keys(chunk, list(self.spec.features)))
        if not self.texts:
            return
        text = self._texts(chunk)
        words = [tokens(t) for t in text]
        grams = np.fromiter((g for w in words for g in _ngrams(w, self.n)), dtype=np.int64)
        if len(grams) and len(self._grams):
            hit = np.isin(self._grams, grams)
            self.dirty.rows[self._gram_rows[hit]] = True
        keys = np.array([hash(s) if len(s.split()) >= MIN_SKELETON_TOKENS else 0 for s in map(skeleton, text)],
                        dtype=np.int64)
        distinct, counts = np.unique(keys[keys != 0], return_counts=True)
        order, sorted_keys = self._skeleton_keys
        position = np.minimum(np.searchsorted(distinct, sorted_keys), max(len(distinct) - 1, 0))
        shared = (distinct[position] == sorted_keys) if len(distinct) else np.zeros(len(sorted_keys), dtype=bool)
        self.skeleton_counts[order[shared]] += counts[position[shared]]
        self.templates.rows |= self.skeleton_counts > 0
        self._near(text, words)

    def _texts(self, columns: Columns) -> list[str]:
        """Each row's text features, joined (no text features: no rows)."""
        if not self.texts:
            return []
        return [" ".join(filter(None, parts)) for parts in zip(*(columns[n].tolist() for n in self.texts), strict=True)]

    def _match(self, finding: Finding, index: tuple[np.ndarray, np.ndarray], keys: list[int]) -> None:
        order, sorted_keys = index
        keys_array = np.array(keys, dtype=np.int64)
        hit = np.isin(sorted_keys, keys_array)
        new = order[hit][~finding.rows[order[hit]]]
        finding.rows[order[hit]] = True
        for row in new[: max(EXAMPLES - len(finding.examples), 0)].tolist():
            features = {name: _plain(self.evaluation[name][row]) for name in self.spec.features}
            finding.examples.append({"eval_row": row, **features})

    def _near(self, text: list[str], words: list[list[str]]) -> None:
        """Near duplicates: LSH candidates (evaluation texts sharing a band with a training text),
        verified by their exact Jaccard; an evaluation text with a twin leaves the index."""
        candidates = [i for i, w in enumerate(words) if w]
        if not candidates or not len(self._lsh_rows):
            return
        train_sets = [shingles(words[i]) for i in candidates]
        matrix = self._minhash.digest_matrix_from_token_sets([sorted(s) for s in train_sets], NUM_PERM, SEED)
        flags = self._lsh.query_duplicate_flags_matrix(matrix)
        flagged = [k for k, flag in enumerate(flags) if flag]
        if not flagged:
            return
        hashes = self._minhash.from_token_sets([sorted(train_sets[k]) for k in flagged], NUM_PERM, SEED)
        finding = self.near_duplicates
        for k, minhash in zip(flagged, hashes, strict=True):
            mine = train_sets[k]
            for key in self._lsh.query(minhash)[:MAX_CANDIDATES]:
                row = int(self._lsh_rows[key])
                theirs = self._shingles[row]
                if len(mine & theirs) >= self.near * len(mine | theirs):
                    finding.rows[row] = True
                    self._lsh.remove(key)
                    if len(finding.examples) < EXAMPLES:
                        finding.examples.append({"eval_row": row, "eval": self._text[row],
                                                 "train": text[candidates[k]],
                                                 "jaccard": round(len(mine & theirs) / len(mine | theirs), 3)})

    @property
    def skeletons(self) -> list[dict[str, Any]]:
        """The most shared templates: skeletons by evaluation rows, with their training texts."""
        shared: dict[str, list[int]] = {}
        for row in np.flatnonzero(self.templates.rows).tolist():
            counted = shared.setdefault(self._skeletons[row], [0, int(self.skeleton_counts[row])])
            counted[0] += 1
        top = sorted(shared.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:10]
        return [{"skeleton": s, "eval_rows": e, "train_rows": t} for s, (e, t) in top]


def _index(keys: list[int], skip: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by key (rows whose key is `skip` left out), and the sorted keys."""
    array = np.array(keys, dtype=np.int64)
    rows = np.flatnonzero(array != skip) if skip is not None else np.arange(len(array))
    order = rows[np.argsort(array[rows], kind="stable")]
    return order, array[order]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if isinstance(value, np.generic) else value


def split_sample(reservoir: Reservoir, holdout: int) -> tuple[Columns, Columns]:
    """A reservoir's rows cut at random into a reference sample and `holdout` held-out rows."""
    sample = reservoir.sample
    rows = len(next(iter(sample.values()), ()))
    order = np.random.default_rng(SEED).permutation(rows)
    cut = max(rows - holdout, rows // 2)
    return ({n: v[order[:cut]] for n, v in sample.items()}, {n: v[order[cut:]] for n, v in sample.items()})


class Distance:
    """Gower distance over the tabular features: numeric differences scaled by the reference's
    1st-99th percentile range (capped at 1), categories equal or not; missing is a value of its
    own. Written here because scikit-learn has no mixed-type metric, and this one is a few
    vectorised lines."""

    def __init__(self, spec: Spec, reference: Columns) -> None:
        self.numeric = [n for n, k in spec.features.items() if k == "numeric"]
        self.categorical = [n for n, k in spec.features.items() if k in ("categorical", "boolean")]
        self.scales = {}
        for name in self.numeric:
            present = reference[name][~np.isnan(reference[name])]
            low, high = np.percentile(present, [1, 99]) if len(present) else (0.0, 0.0)
            self.scales[name] = float(high - low) or 1.0
        self.codes = {name: {v: i for i, v in enumerate(set(reference[name].tolist()))} for name in self.categorical}
        self.reference = self._encoded(reference)

    @property
    def features(self) -> int:
        return len(self.numeric) + len(self.categorical)

    def _encoded(self, columns: Columns) -> list[np.ndarray]:
        encoded = [columns[name] / self.scales[name] for name in self.numeric]
        for name in self.categorical:
            codes = self.codes[name]
            encoded.append(np.fromiter((codes.get(v, -1) for v in columns[name].tolist()), np.int64))
        return encoded

    def nearest(self, queries: Columns, block: int = 256) -> np.ndarray:
        """Each query row's distance to its closest reference row, in [0, 1]."""
        encoded, reference = self._encoded(queries), self.reference
        rows = len(encoded[0]) if encoded else 0
        nearest = np.empty(rows)
        for start in range(0, rows, block):
            total = np.zeros((min(block, rows - start), len(reference[0])))
            for i, (query, ref) in enumerate(zip(encoded, reference, strict=True)):
                a, b = query[start:start + block, None], ref[None, :]
                if i < len(self.numeric):
                    missing = np.isnan(a) | np.isnan(b)
                    both = np.isnan(a) & np.isnan(b)
                    total += np.where(missing, ~both, np.minimum(np.abs(np.nan_to_num(a) - np.nan_to_num(b)), 1.0))
                else:
                    total += (a != b) | (a < 0)  # a value the reference never had is always different
            nearest[start:start + block] = total.min(axis=1) / self.features
        return nearest


def closeness(spec: Spec, train: Columns, holdout: Columns, evaluation: Columns,
              organic: Columns | None) -> dict[str, Any] | None:
    """How close evaluation rows sit to their nearest training row, against held-out training rows
    (the same generator, no copying: the null) and organic rows. `close_share` is the share of
    evaluation rows at most as far as the nearest 5% of held-out rows are: `expected` (0.05, more
    with ties) when the evaluation set is a fresh draw, more when it holds training rows or their
    neighbours."""
    from monitor.core.statistics import wilson_interval

    distance = Distance(spec, train)
    if not distance.features or not len(next(iter(holdout.values()), ())):
        return None
    null, found = distance.nearest(holdout), distance.nearest(evaluation)
    cut = float(np.quantile(null, 0.05))
    close = int((found <= cut).sum())
    low, high = wilson_interval(np.array(close), np.array(len(found)))
    result = {"features": distance.features, "train_sample": len(distance.reference[0]), "holdout": len(null),
              "eval_median": float(np.median(found)), "holdout_median": float(np.median(null)),
              "organic_median": None, "close_share": close / len(found), "close_share_low": float(low),
              "close_share_high": float(high), "expected": float((null <= cut).mean())}
    if organic is not None:
        result["organic_median"] = float(np.median(distance.nearest(organic)))
    return result


def likeness_features(spec: Spec, columns: Columns) -> tuple[dict[str, np.ndarray], set[str]]:
    """The matrix columns a classifier tells evaluation from organic rows on: numeric features as
    they are, categories as codes (the 250 most frequent; the rest missing), text by its
    descriptors (length, words, non-ASCII, digit and uppercase shares); and which are categorical."""
    from monitor.core.channels import text_descriptors

    matrix: dict[str, np.ndarray] = {}
    categorical = set()
    for name, kind in spec.features.items():
        values = columns[name]
        if kind == "numeric":
            matrix[name] = values
        elif kind == "text":
            matrix.update({f"{name}.{d}": v for d, v in text_descriptors(values).items()})
        else:
            distinct, counts = np.unique(values[values != None].astype(str), return_counts=True)  # noqa: E711
            codes = {v: float(i) for i, v in enumerate(distinct[np.argsort(-counts)][:250].tolist())}
            matrix[name] = np.fromiter((codes.get(v, np.nan) for v in values.tolist()), np.float64)
            categorical.add(name)
    return matrix, categorical


def eval_likeness(spec: Spec, evaluation: Columns, organic: Columns, folds: int = 5) -> dict[str, Any]:
    """How easily a simple classifier tells evaluation rows from organic ones: the cross-validated
    ROC AUC (0.5: indistinguishable) of River's logistic regression on standardised features (one
    column per category), and per feature the AUC that feature alone reaches, highest first.
    River, not scikit-learn: River imports scikit-learn whenever it is installed, and that would
    load it (and pandas) into every worker."""
    from river import compose, linear_model, preprocessing

    both = {name: np.concatenate((evaluation[name], organic[name])) for name in spec.features}
    first = next(iter(spec.features))
    target = np.concatenate((np.ones(len(evaluation[first])), np.zeros(len(organic[first]))))
    matrix, categorical = likeness_features(spec, both)
    rows = [{name: (str(int(v)) if name in categorical else float(v)) for name, values in matrix.items()
             if (v := values[i]) == v} for i in range(len(target))]  # NaN (missing) left out
    fold = np.random.default_rng(SEED).permutation(len(target)) % folds
    scores = np.empty(len(target))
    numeric = [name for name in matrix if name not in categorical]
    for k in range(folds):
        parts = ([compose.Select(*numeric) | preprocessing.StandardScaler()] if numeric else []) + \
            ([compose.Select(*sorted(categorical)) | preprocessing.OneHotEncoder()] if categorical else [])
        model = (parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)) | linear_model.LogisticRegression()
        for i in np.flatnonzero(fold != k).tolist():
            model.learn_one(rows[i], bool(target[i]))
        for i in np.flatnonzero(fold == k).tolist():
            scores[i] = model.predict_proba_one(rows[i]).get(True, 0.0)
    features: list[dict[str, Any]] = []
    for name, values in matrix.items():
        alone = _cross_fitted(values, target, fold) if name in categorical else np.nan_to_num(values, nan=-1e300)
        area = rank_auc(alone, target)
        features.append({"feature": name, "auc": max(area, 1.0 - area)})
    features.sort(key=lambda f: -f["auc"])
    sides = {"eval": int(target.sum()), "organic": int(len(target) - target.sum())}
    return {"auc": rank_auc(scores, target), "rows": sides, "features": features[:10]}


def _cross_fitted(codes: np.ndarray, target: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each row's category scored by the evaluation share of that category in the other folds."""
    scores = np.empty(len(codes))
    keys = np.nan_to_num(codes, nan=-1.0)
    for k in np.unique(fold).tolist():
        train, test = fold != k, fold == k
        values, inverse = np.unique(keys[train], return_inverse=True)
        share = np.bincount(inverse, weights=target[train]) / np.bincount(inverse)
        position = np.minimum(np.searchsorted(values, keys[test]), len(values) - 1)
        known = values[position] == keys[test]
        scores[test] = np.where(known, share[position], target[train].mean())
    return scores


def rank_auc(scores: np.ndarray, target: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half).

    >>> rank_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives = target.astype(bool)
    n1, n0 = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else 0.5


def segment_rows(spec: Spec, columns: Columns) -> list[tuple[str | None, str | None, np.ndarray]]:
    """Each segment value the rows have (the spec's segment fields, derived languages too), and
    which rows have it."""
    found: list[tuple[str | None, str | None, np.ndarray]] = []
    for name in spec.segment_fields:
        values = columns[name]
        found += [(name, value, values == value) for value in sorted({v for v in values.tolist() if v is not None})]
    return found


def flattery(spec: Spec, evaluation: Columns, organic_counts: dict[str | None, tuple[int, int]],
             clean: np.ndarray) -> list[dict[str, Any]]:
    """The eval-flattery index: accuracy on the evaluation set minus accuracy on organic labelled
    rows, with Newcombe's 95% interval, overall (`segment` None) and per segment; and the index on
    the evaluation's clean rows (no duplicate or n-gram in the training data): the flattery that
    contamination explains is the difference. `organic_counts`: per segment (None: all), right
    and labelled organic predictions."""
    from monitor.core.channels import PerformanceBins
    from monitor.core.statistics import difference_interval

    if not (spec.label and spec.prediction_label):
        return []
    outcome = PerformanceBins.index(evaluation[spec.label], evaluation[spec.prediction_label])
    groups = [(None, None, np.ones(len(outcome), dtype=bool)), *segment_rows(spec, evaluation)]
    rows = []
    for name, value, members in groups:
        key = None if name is None else f"{name}={value}"
        right_organic, labelled_organic = organic_counts.get(key, (0, 0))
        labelled = members & (outcome < 2)
        if not labelled.any() or not labelled_organic:
            continue
        row: dict[str, Any] = {"segment": None if name is None else {name: value}}
        for part, chosen in (("", labelled), ("clean_", labelled & clean)):
            right, n = int((outcome[chosen] == 0).sum()), int(chosen.sum())
            index, low, high = (float(v) for v in difference_interval(np.array(right), np.array(n),
                                                                       np.array(right_organic),
                                                                       np.array(labelled_organic)))
            row.update({f"{part}index": None if n == 0 else index, f"{part}low": None if n == 0 else low,
                        f"{part}high": None if n == 0 else high, f"{part}eval_labelled": n})
        row.update({"eval_accuracy": float((outcome[labelled] == 0).mean()),
                    "organic_accuracy": right_organic / labelled_organic, "organic_labelled": labelled_organic})
        if row["clean_index"] is not None:
            row["explained_by_contamination"] = row["index"] - row["clean_index"]
        rows.append(row)
    return rows
