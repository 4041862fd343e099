"""A pytest plugin that runs LeRobot 0.6.1's own tests with dexloop's reading classes in LeRobot's place
(the swap is ``swap_lerobot_readers.py``: dexloop reads, LeRobot's writer writes).

Run by hand, in a copy of the LeRobot environment with dexloop installed (never from dexloop's tests):

    cp -a /tmp/lerobot-peer /tmp/lerobot-peer-compat
    /tmp/lerobot-peer-compat/bin/python -m pip install scikit-build-core nanobind cmake ninja pytest
    /tmp/lerobot-peer-compat/bin/python -m pip install --no-build-isolation --no-deps -e .
    mkdir -p /tmp/lerobot-src
    git -C /work/.mirror/huggingface+lerobot/repo archive v0.6.1 tests | tar -x -C /tmp/lerobot-src
    cd /tmp/lerobot-src && PYTHONPATH=<dexloop>/tools/lerobot_reference \\
        /tmp/lerobot-peer-compat/bin/python -m pytest -p lerobot_dataset_tests_on_dexloop tests/datasets

Without ``-p lerobot_dataset_tests_on_dexloop`` the same command runs LeRobot's tests on LeRobot (the baseline).
"""

from __future__ import annotations

import swap_lerobot_readers


def pytest_collection_modifyitems(session, config, items) -> None:
    # Test modules imported the names while being collected: swap there too.
    swap_lerobot_readers.swap()


def pytest_report_header(config) -> str:
    return "LeRobot's reading classes replaced by dexloop's (tools/lerobot_reference/lerobot_dataset_tests_on_dexloop.py)"
