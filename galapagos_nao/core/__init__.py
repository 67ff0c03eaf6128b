"""The pure core: genomes, network records, breeding, measures, data and training.

- :mod:`~galapagos_nao.core.genome`: the layer registry, validation, complexity;
- :mod:`~galapagos_nao.core.network`: the immutable :class:`Network` record,
  ``build()``, ``model()``, ``predict()``;
- :mod:`~galapagos_nao.core.evolution`: mutation operators on a seeded generator;
- :mod:`~galapagos_nao.core.measures`: the archive's axes;
- :mod:`~galapagos_nao.core.datasets`: tasks (MNIST, the bundled subset, tensors):
  ``task`` (the record, its checks, subsets), then ``mnist_data``;
- :mod:`~galapagos_nao.core.device_data`: a task's splits copied once to each device;
- :mod:`~galapagos_nao.core.training`: fit and evaluate on device-resident tensors;
- :mod:`~galapagos_nao.core.checks`, :mod:`~galapagos_nao.core.typing`,
  :mod:`~galapagos_nao.core.extras`: argument checks, type aliases, optional extras;
- :mod:`~galapagos_nao.core.bindings`: what higher layers lend to these classes
  (views, file I/O) without this layer importing them.

Imports only torch, numpy and the standard library; holds no shared state; no
I/O but reading datasets.
"""
