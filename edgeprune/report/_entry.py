"""What every ``report.json`` entry shares: ``to_dict``/``from_dict`` keyed by field name."""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any, ClassVar

_OMIT = {"omit": True}  # a field left out of the JSON while it is None


def _optional(**kwargs):
    return field(default=None, metadata=_OMIT, **kwargs)


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(kind, value):
    if kind is None or value is None:
        return value
    if kind is tuple:  # JSON has lists; the entries keep tuples
        return tuple(value)
    if isinstance(kind, tuple):  # (tuple, Entry) or (dict, Entry)
        container, entry = kind
        if container is dict:
            return {k: entry.from_dict(v) for k, v in value.items()}
        return tuple(entry.from_dict(v) for v in value)
    return kind.from_dict(value)


class _Entry:
    """``to_dict``/``from_dict`` shared by the entries: the keys are the field
    names; ``_types`` names the fields that hold entries themselves."""

    _types: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict:
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if not (f.metadata.get("omit") and getattr(self, f.name) is None)
        }

    @classmethod
    def from_dict(cls, data: dict):
        return cls(
            **{
                f.name: _typed(cls._types.get(f.name), data[f.name])
                for f in fields(cls)
                if f.name in data
            }
        )
