"""The Library and its workspace stay one state: no put is lost to a concurrent first load."""

from __future__ import annotations

import sys
import threading

import pytest

from galapagos_nao.store import codec
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace

THREADS = 8
PUTS = 12
STORED = 150  # what a previous session left: makes the first load slow


@pytest.fixture
def switch_often():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_eight_threads_lose_no_put_while_the_library_first_loads(tiny, tmp_path, switch_often):
    path = tmp_path / "w.db"
    earlier = [tiny() for _ in range(STORED)]
    with Workspace(path) as store:
        store.put_library({net.id: codec.to_bytes(net) for net in earlier})
    store = Workspace(path)
    library = Library(workspace=store)  # a new session: nothing read yet
    barrier = threading.Barrier(THREADS)
    put: list[list[str]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def hammer(index: int) -> None:
        try:
            barrier.wait()
            for step in range(PUTS):
                put[index].append(library.put(tiny()))
                if step % 4 == 0:
                    library.get_all()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.setswitchinterval(0.005)
    assert errors == []
    ids = {net_id for ids in put for net_id in ids} | {net.id for net in earlier}
    assert len(ids) == STORED + THREADS * PUTS
    lost = ids - set(library.get_all())
    assert lost == set(), f"{len(lost)} entries lost"
    exported = {p.stem for p in library.export(tmp_path / "out")}
    assert exported == ids
    for net_id in ids:
        assert library.get(net_id).id == net_id
    for net_id in sorted(ids)[:40]:
        library.remove(net_id)
    assert len(library) == len(ids) - 40
    store.close()
    with Workspace(path, read_only=True) as view:
        assert len(view.load_library()[0]) == len(ids) - 40  # the disk agrees
