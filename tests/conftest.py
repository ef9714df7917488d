"""Shared pytest set-up: CPU-only, deterministic, two threads (the CI machine has 2 cores)."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: on a shared 2-core machine two spinning OpenMP
    threads per process slow small-matrix loops down many times over."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    cuda = _has_cuda()
    for item in items:
        if ("gpu" in item.keywords or "multigpu" in item.keywords) and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
