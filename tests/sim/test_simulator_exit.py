"""No serving thread of a servo simulator outlives the interpreter: a process that exits with a
started simulator still referenced (a module global, a reference cycle) has it stopped by dexloop's
atexit hook, before the interpreter finalizes."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_simulator_left_running_is_stopped_before_the_interpreter_finalizes() -> None:
    script = textwrap.dedent(
        """
        import atexit
        def threads():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
        # atexit runs hooks last-registered first: this one, registered before dexloop is imported,
        # runs after dexloop's and counts the process's threads then.
        atexit.register(lambda: print("at exit", threads(), flush=True))
        before = threads()
        from dexloop.sim import SimulatedBus
        kept = SimulatedBus("so101").start()          # a module global
        cycle = {"bus": SimulatedBus("koch").start()}
        cycle["self"] = cycle                         # a reference cycle
        print("running", threads() - before, flush=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert int(lines["running"]) == 2  # one serving thread per simulator
    baseline = subprocess.run(
        [sys.executable, "-c", script.split("before = threads()")[0] + "import dexloop._core"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # At exit, as many threads as a process that never started a simulator.
    assert lines["at exit"] == baseline.stdout.split()[-1], (result.stdout, baseline.stdout)
    assert "terminate called" not in result.stderr
