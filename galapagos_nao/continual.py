"""Old home of checkpoints and resume (``gn.continual``); kept so existing scripts work.

``track``, ``tracking_workspace`` and ``resume`` act on the shared session
(:mod:`galapagos_nao.run.api`); the checkpoint hook lives in
:mod:`galapagos_nao.run.checkpoint`.
"""

from __future__ import annotations

import galapagos_nao as _gn
from galapagos_nao.run.checkpoint import Checkpointer, generator_from_state, loadable_parameters

track = _gn.session.track
tracking_workspace = _gn.session.tracking_workspace
resume = _gn.session.resume

__all__ = [
    "Checkpointer",
    "generator_from_state",
    "loadable_parameters",
    "resume",
    "track",
    "tracking_workspace",
]
