"""Short alias of :mod:`galapagos_nao`, as in the seed: ``import gn; gn.Selection.get_all()``.

``gn`` *is* the ``galapagos_nao`` module (one namespace, one set of singletons).
"""

import sys

import galapagos_nao

sys.modules[__name__] = galapagos_nao
