"""Shared pytest set-up: CPU-only, deterministic, two threads (the CI machine has 2 cores)."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


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
