"""The archive and what it remembers.

- :mod:`~galapagos_nao.archive.selection`: the MAP-Elites archive (cells, the
  unevaluated queue) behind ``gn.Selection``;
- :mod:`~galapagos_nao.archive.history`: metrics and cell changes per generation;
- :mod:`~galapagos_nao.archive.curation`: pins, favor and vetoes (the Selection's verbs);
- :mod:`~galapagos_nao.archive.lineage`: the registry of ancestors and the walk
  back to a seed.

May import core and config.
"""
