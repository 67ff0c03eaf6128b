"""Training candidates on a Ray cluster (the ``ray`` extra).

In import order (each module imports only those above it):

- :mod:`~galapagos_nao.run.ray.worker`: what runs inside a Ray task;
- :mod:`~galapagos_nao.run.ray.connection`: this process's Ray connection
  (reuse, join or start; undo only what it did);
- :mod:`~galapagos_nao.run.ray.group_tasks`: whole stacked groups as tasks
  (a GPU worker trains a group, not one candidate);
- :mod:`~galapagos_nao.run.ray.driver`: the :class:`RayEvaluator` that submits,
  retries and collects the tasks.

Ray itself is imported only when the backend is used.
"""
