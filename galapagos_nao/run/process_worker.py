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

import dataclasses
import os
import signal
import sys
import threading
import time
from typing import Any, BinaryIO

import torch

from galapagos_nao.core.device_data import DeviceData
from galapagos_nao.core.training import never
from galapagos_nao.run.grouped import train_group
from galapagos_nao.run.log_relay import LogEntry, collecting
from galapagos_nao.run.process_wire import (
    PREFIX_BYTES,
    SPLITS,
    Unit,
    data_from_message,
    frame_lengths,
    frame_prefix,
    parse_header,
    result_message,
    unit_from_message,
)
from galapagos_nao.run.records import Outcome
from galapagos_nao.run.train import failed_outcome

__all__ = ["main", "train_unit"]

#: Seconds between checks that the parent process is still there.
PARENT_POLL_SECONDS = 1.0


def _read_exactly(stream: BinaryIO, size: int) -> bytearray | None:
    """``size`` bytes (writable: tensors view them), or None when the stream ends first."""
    data = bytearray(size)
    view, done = memoryview(data), 0
    while done < size:
        got = stream.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            return None
        done += got
    return data


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytearray] | None:
    """The next frame's header and blob; None when the parent closed the channel."""
    prefix = _read_exactly(stream, PREFIX_BYTES)
    if prefix is None:
        return None
    # The parent is trusted to size its frames: a task's data can be any size.
    header_length, blob_length = frame_lengths(prefix, max_blob=1 << 62)
    header = _read_exactly(stream, header_length)
    blob = _read_exactly(stream, blob_length)
    if header is None or blob is None:
        return None
    return parse_header(header), blob


def train_unit(unit: Unit, data: DeviceData) -> tuple[list[Outcome], list[LogEntry]]:
    """Trains one unit as a worker thread would; its outcomes and the records it logged."""
    torch.set_num_threads(unit.threads)
    started = time.monotonic()
    group = list(unit.candidates)
    with collecting(unit.log_level) as logs:
        try:
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


class _Splits:
    """The run's splits as received (on the CPU), and their copies on other devices."""

    def __init__(self, received: DeviceData) -> None:
        self._copies = {"cpu": received}

    def on(self, device: str) -> DeviceData:
        if device not in self._copies:
            cpu = self._copies["cpu"]
            moved = {name: getattr(cpu, name).to(device) for name in SPLITS}
            self._copies[device] = dataclasses.replace(cpu, device=torch.device(device), **moved)
        return self._copies[device]


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(0)  # the run is gone: nobody will read what this would train


def serve(channel_in: BinaryIO, channel_out: BinaryIO) -> None:
    """Trains the units read from ``channel_in`` until it ends."""
    splits: _Splits | None = None
    while (frame := read_frame(channel_in)) is not None:
        header, blob = frame
        if header["kind"] == "data":
            splits = _Splits(data_from_message(header, blob))
            continue
        if splits is None:
            raise RuntimeError("a unit arrived before the run's data")
        unit = unit_from_message(header, blob)
        outcomes, logs = train_unit(unit, splits.on(unit.device))
        reply, reply_blob = result_message(outcomes, logs)
        channel_out.write(frame_prefix(reply, len(reply_blob)))
        channel_out.write(reply_blob)
        channel_out.flush()


def main() -> None:
    """Serves the parent over stdin and the original stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what anything prints goes to stderr, never into a frame
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    import torch._dynamo  # noqa: F401  (torch imports it at the first optimizer step: seconds)

    # Started: the parent times units from here, not from the imports above.
    channel_out.write(frame_prefix({"kind": "ready"}, 0))
    channel_out.flush()
    serve(sys.stdin.buffer, channel_out)


if __name__ == "__main__":
    main()
