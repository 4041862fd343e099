"""Robots with LeRobot's ``Robot`` interface on dexloop's bus driver, their presets, and simulated twins."""
