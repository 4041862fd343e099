"""``python -m dexloop.envs --dataset.root=ROOT``: records scripted-expert demonstrations of
``so101_push`` (see :func:`dexloop.envs.record.main`)."""

from __future__ import annotations

import sys

from dexloop.envs.record import main

if __name__ == "__main__":
    sys.exit(main())
