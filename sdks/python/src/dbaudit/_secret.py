"""Secrets the client holds: wrapped so no repr, str or format can show them."""

from __future__ import annotations

from collections.abc import Iterable

_MASK = "********"


class Secret:
    """A credential (key, token, password, client secret). Only `reveal()` returns the
    value; every other way of printing it shows a mask. Immutable; any thread may read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a dbaudit Secret cannot be pickled")


def redact(text: str, secrets: Iterable[Secret | None]) -> str:
    """`text` with every occurrence of a known secret masked: for messages built from what
    a server sent back, which could echo a credential."""
    for secret in secrets:
        if secret is not None and len(secret.reveal()) >= 4:
            text = text.replace(secret.reveal(), _MASK)
    return text
