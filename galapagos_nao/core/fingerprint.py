"""A network's fingerprint: one digest of everything a rerun must reproduce bit for bit.

Ids are fresh uuids in every process, so two runs that make the same network
give it different ids. The fingerprint leaves ids out (and the ``mutations``
text, which names parents by id) and covers the rest: the genome, input shape,
classes and input transform, every metric, the generation it was evaluated in,
and the bytes of every weight tensor. The session journal records it for each network an
action names; a replay finds its own copy of that network by it, and two
archives are the same when their cells hold networks of the same fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import weakref

import torch

from galapagos_nao.core.datasets.task import Task
from galapagos_nao.core.network import Network

__all__ = ["fingerprint", "task_fingerprint"]

# Hashing full MNIST takes a fraction of a second: once per Task object is enough
# (tasks are immutable records; the cache lets go of them with their last user).
_task_digests: weakref.WeakKeyDictionary[Task, str] = weakref.WeakKeyDictionary()


def fingerprint(net: Network) -> str:
    """A 32-hex-digit digest of ``net``'s genome, shapes, transform, metrics and weights."""
    digest = hashlib.sha256()
    described = {
        "layers": [[name, list(params)] for name, params in net.layers],
        "input_shape": list(net.input_shape),
        "n_classes": net.n_classes,
        "input_transform": net.input_transform.to_dict(),
        "metrics": [net.test_acc, net.val_acc, net.train_acc, net.loss, net.n_params],
        "generation": net.generation,
    }
    # repr keeps floats exact (json would too) and tells a missing metric from a zero.
    digest.update(json.dumps(described, sort_keys=True, default=repr).encode())
    if net.weights is not None:
        for name in sorted(net.weights):
            tensor = net.weights[name].detach().to("cpu")
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            # Raw bytes, whatever the dtype (numpy has no bfloat16); a 0-d tensor flattens to 1.
            digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        digest.update(b"no weights")
    return digest.hexdigest()[:32]


def task_fingerprint(task: Task) -> str:
    """A 32-hex-digit digest of a task's data: samples, labels, classes and input transform.

    Its name and source are left out: the same data read from another folder is
    the same task.
    """
    found = _task_digests.get(task)
    if found is not None:
        return found
    digest = hashlib.sha256()
    digest.update(json.dumps([task.n_classes, task.input_transform.to_dict()]).encode())
    for tensor in (task.x_train, task.y_train, task.x_test, task.y_test):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().data)  # no copy of the bytes
    _task_digests[task] = digest.hexdigest()[:32]
    return _task_digests[task]
