"""Shared pytest configuration: test markers mirror the notebooks' test flags (settings.ini `tst_flags`)."""
import os
import pytest

MARKERS = {
    "slow": "long-running (real-size models, long training); run with --runslow",
    "gpu": "needs a CUDA device; runs when one is present",
    "online": "needs network access to a model hub; run with --online",
    "browser": "drives a real headless Chromium against the rendered docs site",
}


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")
    parser.addoption("--online", action="store_true", help="also run tests marked online")


def pytest_configure(config):
    for name, doc in MARKERS.items(): config.addinivalue_line("markers", f"{name}: {doc}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download from a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    import torch
    skips = {
        "slow": (not config.getoption("--runslow"), "slow: pass --runslow"),
        "online": (not config.getoption("--online"), "online: pass --online"),
        "gpu": (not torch.cuda.is_available(), "gpu: no CUDA device"),
    }
    for item in items:
        for name, (skip, why) in skips.items():
            if skip and name in item.keywords: item.add_marker(pytest.mark.skip(reason=why))
