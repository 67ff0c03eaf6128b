"""The live view's widget: an anywidget whose one synced trait is the view's state.

Imported only through :func:`galapagos_nao.ui.live.view`, which turns a
missing anywidget into an ImportError naming the ``notebook`` extra. The front
end is ``live.js`` beside this file: one ES module, no build step, so the same
widget runs in JupyterLab, Jupyter Notebook, VS Code, Colab and marimo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from galapagos_nao.ui.live_follow import Follower

__all__ = ["LiveView"]


class LiveView(anywidget.AnyWidget):
    """A run's (or an archive's) live view; its ``state`` is :func:`~.live_state.live_state`.

    Args:
        obj: The Run or Selection to follow.
        refresh: Seconds between refreshes when nothing wakes the view earlier.
    """

    _esm = (Path(__file__).parent / "live.js").read_text(encoding="utf-8")
    #: The state the browser draws, replaced whole at each refresh.
    state = traitlets.Dict().tag(sync=True)

    def __init__(self, obj: Any, *, refresh: float | None = None) -> None:
        super().__init__()
        options = {} if refresh is None else {"refresh": refresh}
        self._follower = Follower(obj, self._publish, **options)
        self._follower.start()

    def _publish(self, state: dict[str, Any]) -> None:
        if self.comm is not None:  # closed: nobody to send to
            self.state = state

    @property
    def following(self) -> bool:
        """True while a thread refreshes the view (the run has not ended, the view is open)."""
        return self._follower.following

    def close(self) -> None:
        """Stops refreshing (the thread, hooks and listeners go), then closes the widget."""
        self._follower.stop()
        super().close()
