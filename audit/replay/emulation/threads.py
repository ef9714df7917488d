"""Function modes in every thread: a TorchFunctionMode is thread-local, so the records' data-loader
threads (ThreadPoolExecutor prefetch) would run outside the device map and the ledger. Each new
thread enters the run's modes before its target runs."""

from __future__ import annotations

import threading


def install(modes: list, record) -> None:
    real_run = threading.Thread.run

    def run(self):
        record.note("function modes entered in every thread")
        entered = []
        try:
            for mode in modes:
                mode.__enter__()
                entered.append(mode)
            real_run(self)
        finally:
            for mode in reversed(entered):
                mode.__exit__(None, None, None)

    threading.Thread.run = run
