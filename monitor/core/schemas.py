"""The JSON Schemas in `schemas/`: the one source of truth for every contract, compiled once."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import jsonschema_rs
import orjson

_PACKAGE = Path(__file__).resolve().parents[1]
# Installed wheels carry the schemas inside the package; a source checkout has them beside it.
SCHEMA_DIR = next(p for p in (_PACKAGE / "schemas", _PACKAGE.parent / "schemas") if p.is_dir())

Validator = Callable[[Any], None]


class ValidationError(ValueError):
    """An instance that does not match its schema; `message` says where and why, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The schema `schemas/<name>.schema.json` as a dict."""
    return orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())


@functools.cache
def validator(name: str) -> Validator:
    """A compiled validator for `schemas/<name>.schema.json`; raises `ValidationError`."""
    return compile_schema(load(name), name)


def compile_schema(schema: dict[str, Any], name: str) -> Validator:
    """A validator for `schema` (jsonschema-rs: about 5x faster per event than pure-Python ones);
    `$ref`s to our own schemas resolve from `schemas/`, nothing is fetched."""
    compiled = jsonschema_rs.validator_for(schema, retriever=_local)

    def validate(instance: Any) -> None:
        if not compiled.is_valid(instance):
            error = next(iter(compiled.iter_errors(instance)))
            where = ".".join([name, *map(str, error.instance_path)])
            raise ValidationError(f"{where}: {error.message}")

    return validate


def all_valid(schema: dict[str, Any]) -> Callable[[list[Any]], bool]:
    """Whether every item of a list matches `schema`, in one call: the fast path for a batch."""
    items = {key: value for key, value in schema.items() if key != "$schema"}
    array = {"type": "array", "items": items} | ({"$schema": schema["$schema"]} if "$schema" in schema else {})
    return jsonschema_rs.validator_for(array, retriever=_local).is_valid  # type: ignore[no-any-return]


def _local(uri: str) -> dict[str, Any]:
    return load(uri.rsplit("/", 1)[-1].removesuffix(".schema.json"))


def problem(name: str, data: Any) -> str | None:
    """None when `data` matches `schemas/<name>.schema.json`, else what is wrong, in one line.

    >>> problem("spec", {"model": "m"})
    'spec: "features" is a required property'
    """
    try:
        validator(name)(data)
    except ValidationError as exc:
        return exc.message
    return None
