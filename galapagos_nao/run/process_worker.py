"""A worker process of the ``processes`` backend (``python -m galapagos_nao.run.process_worker``).

It reads frames (:mod:`galapagos_nao.run.process_wire`) from stdin and writes
one result frame to stdout for every unit it trains, until stdin ends. It
trains exactly as a worker thread would (:func:`~galapagos_nao.run.grouped.train_group`
with the same intra-op threads), so a seeded run gives the same archive on
either backend.

Its stdout is the channel, so at start the channel keeps the original file
descriptor and file descriptor 1 becomes stderr: a stray ``print`` cannot
corrupt a frame. Its stderr is the parent's crash report, not the user's
console; log records travel back with the result instead. It ignores Ctrl-C
(the user's prompt belongs to the parent, which stops it by closing stdin or
killing it) and exits on its own when its parent is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import BinaryIO

import torch

from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.training import never
from galapagos_nao.run.grouped import train_group
from galapagos_nao.run.log_relay import collecting
from galapagos_nao.run.process_wire import (
    PREFIX_BYTES,
    Unit,
    frame_lengths,
    frame_prefix,
    parse_header,
    result_message,
    task_from_message,
    unit_from_message,
)
from galapagos_nao.run.records import Outcome
from galapagos_nao.run.train import failed_outcome

__all__ = ["main", "train_unit"]

#: Seconds between checks that the parent process is still there.
PARENT_POLL_SECONDS = 1.0


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or None when the stream ends first."""
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def read_frame(stream: BinaryIO) -> tuple[dict[str, object], bytes] | None:
    """The next frame's header and blob; None when the parent closed the channel."""
    prefix = _read_exactly(stream, PREFIX_BYTES)
    if prefix is None:
        return None
    # The parent is trusted to size its frames: a task's data can be any size.
    header_length, blob_length = frame_lengths(prefix, max_blob=1 << 62)
    header = _read_exactly(stream, header_length)
    blob = _read_exactly(stream, blob_length) if blob_length else b""
    if header is None or blob is None:
        return None
    return parse_header(header), blob


def train_unit(unit: Unit, task: Task, cache: DeviceDataCache) -> tuple[list[Outcome], list]:
    """Trains one unit as a worker thread would; its outcomes and the records it logged."""
    torch.set_num_threads(unit.threads)
    started = time.monotonic()
    group = list(unit.candidates)
    with collecting(unit.log_level) as logs:
        try:
            data = cache.get(task, torch.device(unit.device), unit.settings.validation_fraction)
            outcomes = train_group(
                group,
                data,
                unit.settings,
                never,
                started + unit.timeout,
                started,
                unit.padded_share,
                unit.budget,
            )
        # BaseException: as on a worker thread, a candidate's own SystemExit fails it only.
        except BaseException as error:  # noqa: BLE001
            outcomes = [failed_outcome(c, error, time.monotonic() - started) for c in group]
    return outcomes, list(logs)


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(0)  # the run is gone: nobody will read what this would train


def serve(channel_in: BinaryIO, channel_out: BinaryIO) -> None:
    """Trains the units read from ``channel_in`` until it ends."""
    task: Task | None = None
    cache = DeviceDataCache()
    while (frame := read_frame(channel_in)) is not None:
        header, blob = frame
        if header["kind"] == "task":
            cache.clear()
            task = task_from_message(header, blob)
            continue
        if task is None:
            raise RuntimeError("a unit arrived before the task's data")
        outcomes, logs = train_unit(unit_from_message(header, blob), task, cache)
        reply, reply_blob = result_message(outcomes, logs)
        channel_out.write(frame_prefix(reply, reply_blob))
        channel_out.write(reply_blob)
        channel_out.flush()


def main() -> None:
    """Serves the parent over stdin and the original stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what anything prints goes to stderr, never into a frame
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    serve(sys.stdin.buffer, channel_out)


if __name__ == "__main__":
    main()
