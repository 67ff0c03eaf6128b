"""Runtime settings in named sections: the thread-safe store ``gn.Parameters``.

Sections mirror the seed: ``gn.Parameters.put(gn.Selection, {"complexity_levels": 4})``
addresses the Selection's section through its singleton; modules
(``gn.orchestration``, ``gn.evolution``, ``gn.training``) and plain names
(``"selection"``) work too. Defaults and checks come from the section
dataclasses of :mod:`galapagos_nao.config.settings`. A running generation reads
one consistent :meth:`Parameters.snapshot` (plain dicts, as checkpoints store
them) and its typed form, :class:`Settings`; a change applies from the next
generation.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from galapagos_nao.config.settings import (
    SECTIONS,
    Settings,
    check_device_available,
    section_name,
)
from galapagos_nao.core.bindings import Viewable, user_dir
from galapagos_nao.core.checks import describe
from galapagos_nao.core.clock import SteeringClock
from galapagos_nao.core.listeners import Listeners

__all__ = ["ParameterRow", "ParameterTable", "Parameters", "Settings", "section_name"]


@dataclass(frozen=True)
class ParameterRow:
    """One setting as :meth:`Parameters.get_all` shows it."""

    section: str
    key: str
    value: Any
    default: Any
    #: What it means (the line the README's table shows).
    doc: str

    @property
    def changed(self) -> bool:
        """True when the value is not the default."""
        return bool(self.value != self.default)


@dataclass(frozen=True)
class ParameterTable(Viewable, Mapping[str, dict[str, Any]]):
    """Every setting at one moment: section → key → value, shown as a table.

    A snapshot: changing it changes nothing (``gn.Parameters.put`` does).
    """

    #: Section → key → value.
    settings: dict[str, dict[str, Any]]

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.settings[section_name(section)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    def rows(self) -> list[ParameterRow]:
        """One row per setting, section by section, in declaration order."""
        found = []
        for name, section in SECTIONS.items():
            defaults, docs = section.defaults(), section.docs()
            for key in section.names():
                value = self.settings.get(name, {}).get(key, defaults[key])
                found.append(ParameterRow(name, key, value, defaults[key], docs[key]))
        return found

    def __repr__(self) -> str:
        changed = sum(row.changed for row in self.rows())
        return f"<Parameters: {len(self.rows())} settings, {changed} changed from the defaults>"


class Parameters:
    """Thread-safe store of settings by section; ``gn.Parameters`` is the shared one.

    Every operation is atomic under one lock; readers get deep copies.

    Attributes:
        listeners: Told ``("put", {"section", "values"})`` after each :meth:`put`
            and ``("reset", {})`` after :meth:`reset`.
        clock: Held by each change and by the runs that read these settings, so
            a change lands wholly before or after a generation's read (see
            :mod:`~galapagos_nao.core.clock`); a Selection made with these
            Parameters shares it.
    """

    def __dir__(self) -> list[str]:
        # What runs and the session use stays out of ``gn.Parameters.<Tab>``.
        return user_dir(self, frozenset({"clock", "listeners", "load"}))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = self.defaults()
        self.listeners = Listeners()
        self.clock = SteeringClock()

    @staticmethod
    def defaults() -> dict[str, dict[str, Any]]:
        """A fresh copy of every section's defaults."""
        return {name: section.defaults() for name, section in SECTIONS.items()}

    def put(self, section: Any, values: Mapping[str, Any]) -> None:
        """Merges ``values`` into ``section``, keeping its other keys.

        All values are checked before any is stored: on error nothing changes.

        Raises:
            ValueError: for an unknown section or key (listing the known ones), a
                value of the wrong type or range (naming the key and value), or a
                ``training.device`` this machine does not have (with the threads
                backend; a Ray cluster's workers may have GPUs this one lacks).
        """
        name = section_name(section)
        if not isinstance(values, Mapping):
            raise ValueError(f"values must be a dict of settings, got {describe(values)}")
        checked = {key: SECTIONS[name].check(key, value) for key, value in values.items()}
        with self._lock:
            backend = self._values["orchestration"]["backend"]
        if name == "training" and "device" in checked and backend == "threads":
            # This machine trains: a device it lacks would fail every candidate.
            check_device_available(f"{name}.device", checked["device"])
        with self.clock:
            with self._lock:
                self._values[name].update(copy.deepcopy(checked))
            self.listeners.notify("put", {"section": name, "values": checked})

    def get(self, section: Any, key: str | None = None) -> Any:
        """One setting's value, or a copy of the whole section when ``key`` is None.

        Raises:
            ValueError: for an unknown section.
            KeyError: for an unknown key, listing the known ones.
        """
        name = section_name(section)
        with self._lock:
            if key is None:
                return copy.deepcopy(self._values[name])
            if key not in self._values[name]:
                raise KeyError(f"{name}: unknown key {key!r}; known: {sorted(self._values[name])}")
            return copy.deepcopy(self._values[name][key])

    def get_all(self) -> ParameterTable:
        """Every setting now, with its default and meaning (a table in IPython).

        Index it like the snapshot: ``gn.Parameters.get_all()["training"]["epochs"]``.
        """
        return ParameterTable(self.snapshot())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A consistent deep copy of every section, taken under one lock."""
        with self._lock:
            return copy.deepcopy(self._values)

    def settings(self) -> Settings:
        """A consistent, typed copy of every section (``settings().training.epochs``)."""
        return Settings.from_snapshot(self.snapshot())

    def load(self, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Replaces all settings from a snapshot (e.g. a resumed run's), checked first."""
        fresh = self.defaults()
        for section, section_values in values.items():
            name = section_name(section)
            known = SECTIONS[name].names()
            for key, value in section_values.items():
                if key in known:  # keys of a newer/older version are ignored
                    fresh[name][key] = SECTIONS[name].check(key, value)
        with self._lock:
            self._values = fresh

    def reset(self) -> None:
        """Restores every default."""
        with self.clock:
            with self._lock:
                self._values = self.defaults()
            self.listeners.notify("reset", {})

    def __repr__(self) -> str:
        return f"Parameters({self.snapshot()!r})"
