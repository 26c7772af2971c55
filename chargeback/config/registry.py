"""Top-level sections of the config file. Each is a handler registered under its key:

    register_section("budgets", parse=parse_budgets, apply=apply_budgets, order=50)

`parse(node, path)` reads the section's YAML node with the readers of `chargeback.config.schema`
(raising ConfigError with path and line; no database access). `apply(ctx, value)` makes the
database match, inside the apply transaction, through services, recording each change with
`ctx.report`. Sections apply in ascending `order` (providers 10, consumer_groups 20,
cost_tracking 30), so a later section can rely on the departments an earlier one created. A
section absent from the file is not managed: its rows are left as they are.

Upper apps may also add a key to each consumer group (`consumer_groups[].<key>`):

    register_group_key("cache", parse=parse_group_cache, apply=apply_group_cache)

`parse(node, path)` as above; `apply(ctx, group, value)` runs after the group itself was
applied, with `value` None when the group has no such key (reset it), and returns the names of
what it changed (they join the group's `changed consumer_group ...` line).

A key inside a built-in section can be registered the same way (`register_subkey`), for a
setting an upper app owns that the file format puts there (`providers.fallback`, read and stored
by the gateway): its `parse(node, path)` reads the key's node; its `apply(ctx, value, parent)`
runs after the section's own apply with the parsed value, or None when the section is in the
file without the key (the key's default), and the section's parsed value.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Section:
    key: str
    parse: Callable
    apply: Callable
    order: int = 100


@dataclass(frozen=True)
class SubKey:
    section: str
    key: str
    parse: Callable
    apply: Callable


_SECTIONS: dict[str, Section] = {}
_SUBKEYS: dict[tuple[str, str], SubKey] = {}


def register_section(key: str, *, parse: Callable, apply: Callable, order: int = 100) -> None:
    """Add (or replace, for reloads) the handler of one top-level key."""
    _SECTIONS[key] = Section(key=key, parse=parse, apply=apply, order=order)


def unregister_section(key: str) -> None:
    _SECTIONS.pop(key, None)


def sections() -> list[Section]:
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.key))


def section(key: str) -> Any:
    return _SECTIONS.get(key)


def register_subkey(section: str, key: str, *, parse: Callable, apply: Callable) -> None:
    """Add (or replace) the handler of `key` inside the built-in `section`."""
    _SUBKEYS[(section, key)] = SubKey(section=section, key=key, parse=parse, apply=apply)


def subkeys(section: str) -> list[SubKey]:
    """The keys registered inside `section`, in the order they were registered."""
    return [sub for (name, _key), sub in _SUBKEYS.items() if name == section]


@dataclass(frozen=True)
class GroupKey:
    key: str
    parse: Callable
    apply: Callable


_GROUP_KEYS: dict[str, GroupKey] = {}


def register_group_key(key: str, *, parse: Callable, apply: Callable) -> None:
    """Add (or replace, for reloads) a key of every consumer group."""
    _GROUP_KEYS[key] = GroupKey(key=key, parse=parse, apply=apply)


def group_keys() -> list[GroupKey]:
    return sorted(_GROUP_KEYS.values(), key=lambda k: k.key)
