"""The JSON Schemas in `schemas/`: the one source of truth for every contract, compiled once."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import fastjsonschema
import orjson

_PACKAGE = Path(__file__).resolve().parent
# Installed wheels carry the schemas inside the package; a source checkout has them beside it.
SCHEMA_DIR = next(p for p in (_PACKAGE / "schemas", _PACKAGE.parent / "schemas") if p.is_dir())

Validator = Callable[[Any], Any]
ValidationError = fastjsonschema.JsonSchemaValueException


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The schema `schemas/<name>.schema.json` as a dict."""
    return orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())


@functools.cache
def validator(name: str) -> Validator:
    """A compiled validator for `schemas/<name>.schema.json`; raises `ValidationError`."""
    return fastjsonschema.compile(load(name), handlers={"https": _local})


def _local(uri: str) -> dict[str, Any]:
    """Resolves `$ref`s to our own schemas from `schemas/`: nothing is fetched."""
    return load(uri.rsplit("/", 1)[-1].removesuffix(".schema.json"))


def problem(name: str, data: Any) -> str | None:
    """None when `data` matches `schemas/<name>.schema.json`, else what is wrong, in one line.

    >>> problem("spec", {"model": "m"})
    "spec must contain ['features'] properties"
    """
    try:
        validator(name)(data)
    except ValidationError as exc:
        return exc.message.replace("data", name, 1)
    return None
