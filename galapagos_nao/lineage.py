"""Old home of lineage (``galapagos_nao.lineage``); kept so existing scripts work.

``lineage`` walks ancestry through the shared session (``gn.lineage``), and
``registry`` is the registry its runs feed.
"""

from __future__ import annotations

import galapagos_nao as _gn
from galapagos_nao.archive.lineage import LineageRegistry

lineage = _gn.session.lineage
registry = _gn.session.lineage_registry

__all__ = ["LineageRegistry", "lineage", "registry"]
