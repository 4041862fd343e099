"""dexloop: LeRobot-compatible robot learning with a native C++ core."""

from __future__ import annotations

__version__ = "0.1.0"
