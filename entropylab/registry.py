"""`Registry`: named alternatives of one kind (policy losses, advantage estimators, samplers, log formats).

One rule for all of them: a name is registered once (a second, different entry under it is refused; the same
entry again is a no-op, so re-importing a module is harmless), and looking up an unknown name fails with a
one-line error listing the known names. No torch here: the CLI and `logs` use it.

    LOSSES: Registry[LossFn] = Registry("policy loss", plural="policy losses", field="policy_loss")

    @LOSSES.register("vanilla", description="PPO clipped surrogate")
    def vanilla(...): ...

    LOSSES.get("vanilla")          # the function; ConfigError "policy_loss: unknown policy loss ..." otherwise
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from entropylab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order; reads like a read-only dict (`in`, `[]`, iteration)."""

    def __init__(
        self,
        kind: str,
        *,
        plural: str | None = None,
        field: str | None = None,
        error: type[Exception] = ConfigError,
        sort_names: bool = False,
    ) -> None:
        """`kind` names an entry in messages ("policy loss"); `field` the config field errors start with;
        `error` the exception class of a failed lookup; `sort_names` lists the known names alphabetically in it
        (else in registration order)."""
        self.kind, self.plural, self.field, self.error = kind, plural or f"{kind}s", field, error
        self.sort_names = sort_names
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    @overload
    def register(self, name: str, entry: None = None, *, description: str = "") -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T, *, description: str = "") -> T: ...

    def register(self, name: str, entry: T | None = None, *, description: str = "") -> T | Callable[[T], T]:
        """Register `entry` under `name` (or, without an entry, return a decorator that does); a name already
        taken by another entry is refused with a ConfigError naming it."""
        if entry is None:
            return lambda fn: self.register(name, fn, description=description)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries and self._entries[name] is not entry:
            raise ConfigError(f"{self.kind} {name!r} is already registered; choose another name")
        self._entries[name] = entry
        self._descriptions[name] = description or self._descriptions.get(name, "")
        return entry

    def unregister(self, name: str) -> None:
        """Remove the entry registered as `name` (a plugin being reloaded, a test cleaning up)."""
        self.get(name)
        del self._entries[name], self._descriptions[name]

    def get(self, name: str) -> T:
        """The entry registered as `name`; an error listing the known names otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            where = f"{self.field}: " if self.field else ""
            known = sorted(self._entries) if self.sort_names else list(self._entries)
            raise self.error(f"{where}unknown {self.kind} {name!r}; known {self.plural}: {', '.join(known)}") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def describe(self, name: str) -> str:
        """The one-line description given at registration ("" if none)."""
        self.get(name)
        return self._descriptions[name]

    def descriptions(self) -> dict[str, str]:
        """name -> description, in registration order."""
        return dict(self._descriptions)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in registration order."""
        return list(self._entries.items())

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
