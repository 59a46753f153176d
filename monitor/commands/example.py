"""The bundled example: a support-ticket router trained on synthetic tickets.

The synthetic tickets are what a generator writes: tidy, short, in English, German or French.
Production traffic starts out like them and then departs from them, as real traffic does:
Spanish tickets arrive (a language the synthetic data never had), texts get longer and messier
(order numbers, shouting, emoji, typos), order amounts grow, and the router's accuracy on those
organic tickets falls below its synthetic evaluation. Everything is generated from a seed, so
the example needs no download.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
import yaml

MODEL = "support-router"
SPEC: dict[str, Any] = {
    "model": MODEL,
    "id_field": "request_id",
    "timestamp_field": "timestamp",
    "features": {"body": "text", "channel": "categorical", "priority": "categorical", "amount": "numeric",
                 "attachments": "numeric", "returning_customer": "boolean"},
    "segments": ["language", "region"],
    "prediction": {"label": "predicted", "score": "confidence"},
    "label": "true_label",
    "provenance": "source",
}
TOPICS = ("billing", "shipping", "technical", "account")
PHRASES = {
    "en": {"billing": ["I was charged twice for my order", "please refund the extra payment",
                       "my invoice shows the wrong amount"],
           "shipping": ["my parcel has not arrived yet", "the delivery is late", "where is my package"],
           "technical": ["the app crashes when I log in", "the page does not load", "I get an error on checkout"],
           "account": ["I cannot reset my password", "please close my account", "how do I change my email"]},
    "de": {"billing": ["mir wurde doppelt berechnet", "bitte erstatten Sie die Zahlung",
                       "die Rechnung ist falsch"],
           "shipping": ["mein Paket ist nicht angekommen", "die Lieferung ist spät", "wo ist meine Sendung"],
           "technical": ["die App stürzt beim Login ab", "die Seite lädt nicht", "Fehler an der Kasse"],
           "account": ["ich kann mein Passwort nicht zurücksetzen", "bitte löschen Sie mein Konto",
                       "wie ändere ich meine Adresse"]},
    "fr": {"billing": ["on m'a facturé deux fois", "merci de rembourser le paiement", "la facture est fausse"],
           "shipping": ["mon colis n'est pas arrivé", "la livraison est en retard", "où est mon paquet"],
           "technical": ["l'application plante à la connexion", "la page ne charge pas", "erreur au paiement"],
           "account": ["je ne peux pas changer mon mot de passe", "fermez mon compte svp",
                       "comment changer mon email"]},
    "es": {"billing": ["me cobraron dos veces", "devuelvan el pago por favor", "la factura está mal"],
           "shipping": ["mi paquete no ha llegado", "el envío se retrasa", "dónde está mi pedido"],
           "technical": ["la app se cierra al entrar", "la página no carga", "error al pagar"],
           "account": ["no puedo cambiar mi contraseña", "cierren mi cuenta", "cómo cambio mi correo"]},
}
MESS = ["!!!", "ORDER #{n}", "pls help asap", "😡", "tried 3 times already", "ref {n}-{m}", "thx", "???"]


def _ticket(rng: np.random.Generator, language: str, topic: str, messy: bool) -> str:
    sentences = [str(rng.choice(PHRASES[language][topic])) for _ in range(rng.integers(1, 3))]
    if messy:
        sentences += [str(rng.choice(MESS)).format(n=rng.integers(10_000, 99_999), m=rng.integers(10, 99))
                      for _ in range(rng.integers(1, 4))]
        if rng.random() < 0.3:
            sentences = [s.upper() for s in sentences]
    text = ". ".join(sentences)
    return text[0].upper() + text[1:] + ("" if messy else ".")


def _record(rng: np.random.Generator, index: int, drifted: bool) -> dict[str, Any]:
    new_language = drifted and rng.random() < 0.15
    language = "es" if new_language else str(rng.choice(["en", "de", "fr"], p=[0.6, 0.25, 0.15]))
    region = {"en": str(rng.choice(["us", "eu", "apac"], p=[0.6, 0.2, 0.2])), "es": "latam"}.get(language, "eu")
    topic = str(rng.choice(TOPICS, p=[0.35, 0.3, 0.2, 0.15]))
    messy = drifted and rng.random() < 0.5
    accuracy = 0.55 if new_language else (0.8 if messy else 0.93)
    right = rng.random() < accuracy
    predicted = topic if right else str(rng.choice([t for t in TOPICS if t != topic]))
    return {
        "request_id": f"t-{index:07d}",
        "timestamp": 1_767_225_600 + index,
        "body": _ticket(rng, language, topic, messy),
        "channel": str(rng.choice(["email", "chat", "web", "phone"], p=[0.4, 0.3, 0.2, 0.1])),
        "priority": str(rng.choice(["low", "normal", "high"], p=[0.3, 0.5, 0.2])),
        "amount": round(float(rng.lognormal(3.8 + (0.5 if drifted else 0.0), 0.6)), 2),
        "attachments": int(rng.poisson(0.3)),
        "returning_customer": bool(rng.random() < 0.4),
        "language": language,
        "region": region,
        "predicted": predicted,
        "confidence": round(float(rng.beta(8, 2) if right else rng.beta(4, 3)), 4),
        "true_label": topic,
    }


def training_rows(rows: int = 20_000, seed: int = 7) -> Iterator[dict[str, Any]]:
    """The synthetic training set: rows of the spec's columns."""
    rng = np.random.default_rng(seed)
    for index in range(rows):
        yield {**_record(rng, index, drifted=False), "source": "synthetic"}


def live_events(events: int = 60_000, drift_at: int = 30_000, labelled: float = 0.3, probes: float = 0.1,
                seed: int = 11) -> Iterator[dict[str, Any]]:
    """Production traffic as live events; reality departs from the synthetic data at `drift_at`. A
    share `probes` of them are synthetic probes (canaries made like the training rows): they never
    drift, and judge nothing but their own accuracy."""
    rng = np.random.default_rng(seed)
    features = list(SPEC["features"])
    for index in range(events):
        probe = rng.random() < probes
        row = _record(rng, index, drifted=index >= drift_at and not probe)
        event = {
            "request_id": row["request_id"],
            "timestamp": row["timestamp"],
            "model": MODEL,
            "features": {name: row[name] for name in features},
            "segments": {"language": row["language"], "region": row["region"]},
            "provenance": "synthetic" if probe else "organic",
            "prediction": {"label": row["predicted"], "score": row["confidence"]},
        }
        if rng.random() < labelled:
            event["label"] = row["true_label"]
        yield event


def write(directory: Path, rows: int = 20_000, events: int = 60_000, drift_at: int = 30_000) -> dict[str, Path]:
    """Writes spec.yaml, train.csv and live.jsonl into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"spec": directory / "spec.yaml", "train": directory / "train.csv", "live": directory / "live.jsonl"}
    paths["spec"].write_text(yaml.safe_dump(SPEC, sort_keys=False))
    with paths["train"].open("w", newline="") as out:
        writer: csv.DictWriter[str] | None = None
        for row in training_rows(rows):
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    with paths["live"].open("wb") as out:
        for event in live_events(events, drift_at):
            out.write(orjson.dumps(event) + b"\n")
    return paths
