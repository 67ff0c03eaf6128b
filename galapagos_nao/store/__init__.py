"""Keeping what was learned: network files, the workspace and the Library.

- :mod:`~galapagos_nao.store.layout`: the bytes of a network file, checked
  (header, tensor table, limits, the whole-file digest) before they are believed;
- :mod:`~galapagos_nao.store.codec`: one format, a Network as safetensors +
  JSON under one digest, and the checks that read it back;
- :mod:`~galapagos_nao.store.persistence`: network files in that format
  (save/load/export, atomic writes) and ONNX;
- :mod:`~galapagos_nao.store.workspace`: the SQLite file behind the Library and
  run checkpoints (file health and lock, tables, the current workspace);
- :mod:`~galapagos_nao.store.library`: the user's snapshots of networks;
- :mod:`~galapagos_nao.store.journal`: the session's steering actions, in order;
- :mod:`~galapagos_nao.store.watch_snapshot` and :mod:`~galapagos_nao.store.watch_reader`:
  a workspace polled read-only from another process, as records ``watch`` draws.

Inside, imports point one way: layout < codec < persistence < workspace < library < journal
< watch_snapshot < watch_reader.
May import core, config and archive. :func:`bind` lends ``Network.save`` and
``Network.to_onnx`` their file code; the package root calls it once.
"""

from __future__ import annotations

from galapagos_nao.core.bindings import bind as _bind
from galapagos_nao.core.network import Network
from galapagos_nao.store import codec, journal, layout, library, persistence, workspace

__all__ = ["bind", "codec", "journal", "layout", "library", "persistence", "workspace"]


def bind() -> None:
    """Lends ``Network.save`` and ``Network.to_onnx`` the file code of :mod:`persistence`."""
    _bind(Network, "save", persistence.save)
    _bind(Network, "to_onnx", persistence.to_onnx)
