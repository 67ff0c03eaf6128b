"""Running evolution: candidates, devices, evaluators, the generation loop and its API.

In import order (each module imports only those above it):

- :mod:`~galapagos_nao.run.records`: candidates, outcomes, evaluation jobs;
- :mod:`~galapagos_nao.run.devices`: devices, workers and scheduling;
- :mod:`~galapagos_nao.run.train`: one candidate into a Network record;
- :mod:`~galapagos_nao.run.local`: the local-threads evaluator;
- :mod:`~galapagos_nao.run.ray`: the Ray driver and worker (optional extra);
- :mod:`~galapagos_nao.run.loop`: the :class:`Run` and its generation loop;
- :mod:`~galapagos_nao.run.checkpoint`: the checkpoint hook and resume helpers;
- :mod:`~galapagos_nao.run.hooks`: the hooks every run gets;
- :mod:`~galapagos_nao.run.launch`: the one path that prepares and starts a run;
- :mod:`~galapagos_nao.run.api`: the :class:`Session` behind ``gn.evolve``.

May import core, config, archive and store.
"""
