"""Settings: the Parameters sections, their defaults, validation and documentation.

- :mod:`~galapagos_nao.config.parameters`: one section per part of the
  algorithm and the thread-safe :class:`Parameters` store (``gn.Parameters``).

May import core only.
"""
