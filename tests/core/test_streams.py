"""Task streams, the replay memory and the continual-learning metrics, on real MNIST."""

from __future__ import annotations

import pytest
import torch

from galapagos_nao.core import datasets
from galapagos_nao.core.continual import ReplayMemory, TaskMetrics, training_task
from galapagos_nao.core.datasets import ReplayTask, Task
from galapagos_nao.core.device_data import DeviceDataCache, split_validation


def test_split_mnist_gives_five_two_digit_tasks_with_one_ten_way_head(small_mnist):
    stream = datasets.split_mnist(small_mnist)
    assert [t.name for t in stream] == [
        f"split-mnist {a},{b}" for a, b in datasets.SPLIT_MNIST_PAIRS
    ]
    for task, pair in zip(stream, datasets.SPLIT_MNIST_PAIRS, strict=True):
        assert set(task.y_train.tolist()) == set(pair) == set(task.y_test.tolist())
        assert task.n_classes == 10  # class-incremental: labels as they are
        assert task.input_transform == small_mnist.input_transform
    assert sum(t.n_train for t in stream) == small_mnist.n_train


def test_permuted_mnist_is_fixed_by_its_seed_differs_per_task_and_inverts(small_mnist):
    first = datasets.permuted_mnist(3, seed=7, base=small_mnist)
    again = datasets.permuted_mnist(3, seed=7, base=small_mnist)
    other = datasets.permuted_mnist(3, seed=8, base=small_mnist)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(first[0].x_train, other[0].x_train)
    assert not torch.equal(first[0].x_train, first[1].x_train)
    orders = datasets.pixel_permutations(3, 7, 28 * 28)
    for task, order in zip(first, orders, strict=True):
        assert torch.equal(task.y_train, small_mnist.y_train)  # domain-incremental
        restored = torch.empty_like(task.x_train.reshape(task.n_train, -1))
        restored[:, order] = task.x_train.reshape(task.n_train, -1)
        assert torch.equal(restored.reshape(small_mnist.x_train.shape), small_mnist.x_train)


def test_a_user_stream_that_differs_is_refused_naming_the_index(small_mnist):
    tiny = datasets.subset(small_mnist, 100, 50, seed=1)
    small_images = datasets.from_tensors(
        tiny.x_train[:, :, :14, :14], tiny.y_train, tiny.x_test[:, :, :14, :14], tiny.y_test
    )
    with pytest.raises(ValueError, match=r"tasks\[2\].*input_shape \(1, 14, 14\)"):
        datasets.check_stream([tiny, tiny, small_images])
    more_labels = datasets.from_tensors(
        tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test, n_classes=12
    )
    with pytest.raises(ValueError, match=r"tasks\[1\].*n_classes 12"):
        datasets.check_stream([tiny, more_labels])
    with pytest.raises(ValueError, match=r"tasks\[1\] must be a datasets.Task"):
        datasets.check_stream([tiny, "mnist"])
    with pytest.raises(ValueError, match="empty"):
        datasets.check_stream([])
    assert datasets.check_stream((tiny, tiny)) == [tiny, tiny]


def test_replay_memory_is_class_balanced_bounded_and_outside_validation(small_mnist):
    stream = datasets.split_mnist(small_mnist)
    memory = ReplayMemory()
    memory.add(0, stream[0], 40, 0.1)
    memory.add(1, stream[1], 40, 0.1)
    assert len(memory) == 80 and memory.tasks() == [0, 1]
    for position, pair in ((0, (0, 1)), (1, (2, 3))):
        labels = stream[position].y_train[memory.indices(position)]
        assert torch.bincount(labels, minlength=10)[list(pair)].tolist() == [20, 20]
        _, val_index = split_validation(stream[position], 0.1)
        assert not set(memory.indices(position).tolist()) & set(val_index.tolist())
    restored = ReplayMemory.from_dict(memory.as_dict(), stream)
    assert restored.as_dict() == memory.as_dict()
    with pytest.raises(ValueError, match=r"replay memory\[1\]"):
        ReplayMemory.from_dict({"1": [10**6]}, stream)


def test_training_task_mixes_replay_and_scores_every_task_seen(small_mnist):
    stream = datasets.split_mnist(small_mnist)
    assert training_task(stream, 1, [0], ReplayMemory(), 0.1) is stream[1]  # naive
    memory = ReplayMemory()
    memory.add(0, stream[0], 30, 0.1)
    task = training_task(stream, 1, [0], memory, 0.1)
    assert isinstance(task, ReplayTask)
    train_index, _ = split_validation(stream[1], 0.1)
    assert task.n_train == len(train_index) + 30
    assert set(task.y_train.tolist()) == {0, 1, 2, 3}
    assert task.val_groups.unique().tolist() == [0, 1]
    assert set(task.y_test[task.test_groups == 0].tolist()) == {0, 1}
    data = DeviceDataCache().get(task, torch.device("cpu"), 0.1)
    assert data.x_train.shape[0] == task.n_train  # no second validation carve


def test_balanced_mixing_repeats_each_past_task_to_the_current_tasks_size(small_mnist):
    stream = datasets.split_mnist(small_mnist)
    memory = ReplayMemory()
    memory.add(0, stream[0], 30, 0.1)
    memory.add(1, stream[1], 7, 0.1)
    task = training_task(stream, 2, [0, 1], memory, 0.1, balanced=True)
    n_current = len(split_validation(stream[2], 0.1)[0])
    counts = torch.bincount(task.y_train, minlength=10)
    assert task.n_train == 3 * n_current  # every task seen weighs the same
    assert int(counts[0] + counts[1]) == int(counts[2] + counts[3]) == n_current
    # only the kept samples are repeated: no other sample of a past task gets in
    kept = {tuple(x.flatten()[:50].tolist()) for x in stream[0].x_train[memory.indices(0)]}
    past = task.x_train[task.y_train <= 1]
    assert {tuple(x.flatten()[:50].tolist()) for x in past} == kept


def test_r_acc_and_bwt_match_a_hand_computed_matrix():
    metrics = TaskMetrics(
        ("a", "b", "c"),
        (0, 1, 2),
        ((0.9, 0.1, 0.0), (0.6, 0.8, 0.1), (0.5, 0.4, 0.7)),
    )
    assert metrics.acc == pytest.approx((0.5 + 0.4 + 0.7) / 3)
    assert metrics.bwt == pytest.approx(((0.5 - 0.9) + (0.4 - 0.8)) / 2)
    assert metrics.acc_history == pytest.approx([0.9, 0.7, 1.6 / 3])
    assert metrics.bwt_at(0) == 0.0 and metrics.bwt_at(1) == pytest.approx(0.6 - 0.9)
    assert TaskMetrics.from_dict(metrics.as_dict(), 3) == metrics
    with pytest.raises(ValueError, match="row 1"):
        TaskMetrics.from_dict({**metrics.as_dict(), "matrix": [[0, 0, 0], [0, 0], [0, 0, 0]]}, 3)


def test_a_base_that_is_not_a_task_is_named(small_mnist):
    with pytest.raises(ValueError, match="base must be a datasets.Task"):
        datasets.split_mnist("mnist")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_tasks"):
        datasets.permuted_mnist(0, base=small_mnist)
    assert isinstance(datasets.permuted_mnist(1, base=small_mnist)[0], Task)
