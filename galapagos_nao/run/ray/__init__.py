"""Training candidates on a Ray cluster (the ``ray`` extra).

- :mod:`~galapagos_nao.run.ray.worker`: what runs inside a Ray task;
- :mod:`~galapagos_nao.run.ray.driver`: the :class:`RayEvaluator` that submits,
  retries and collects them.

Ray itself is imported only when the backend is used.
"""
