"""Fault schedules: thousands of transactions through FeetechMotorsBus / DynamixelMotorsBus on the
simulated SO-101 and Koch buses, whose registers hold distinct known values, while random faults hit
both directions of the line (replies dropped, corrupted, delayed within and past the deadline, sent
under another id or behind garbage; instructions damaged, lost or preceded by noise; motors that
vanish and come back; servo error bits).

What must hold, whatever the schedule:
* no value returned differs from the register's current value in the simulator (a late reply of
  one transaction is never taken for another's, whichever register or motor it came from);
* every failure is one of dexloop's typed bus errors;
* once the faults stop, the bus answers again within a bounded number of transactions.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from dexloop.errors import BusProtocolError, BusTimeoutError, ServoError
from dexloop.motors import Motor, MotorNormMode
from dexloop.motors.dynamixel import DynamixelMotorsBus
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import simulated_bus

TYPED_BUS_ERRORS = (BusTimeoutError, BusProtocolError, ServoError)
LATENCY_MARGIN_MS = 5.0

# Registers of equal size that the schedule reads, so that a reply of one would decode as the
# other; and the ones it writes. Present_Position stays put: torque is off.
ROBOTS = {
    "so101": {
        "bus": FeetechMotorsBus,
        "read": ["Present_Position", "Goal_Position", "Min_Position_Limit", "Max_Position_Limit"],
        "write": ["Goal_Position", "Goal_Velocity"],
        "values": range(100, 3900),
    },
    "koch": {
        "bus": DynamixelMotorsBus,
        "read": ["Present_Position", "Goal_Position", "Profile_Velocity", "Profile_Acceleration"],
        "write": ["Goal_Position", "Profile_Velocity"],
        "values": range(100, 3900),
    },
}


@dataclass
class Tally:
    transactions: int = 0
    values_checked: int = 0
    wrong_values: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def failed(self, error: Exception) -> None:
        name = type(error).__name__
        self.failures[name] = self.failures.get(name, 0) + 1


def distinct_values(sim, registers: list[str], rng: random.Random, values: range) -> None:
    """Gives every (motor, register) a value no other one holds."""
    chosen = rng.sample(values, len(sim.preset.motors) * len(registers))
    for motor in sim.preset.motors:
        for register in registers:
            sim.write(motor.id, register, chosen.pop())


@dataclass
class LastingFaults:
    """Faults that last several transactions: a vanished motor, error bits; each with the step at
    which it ends."""

    vanished: dict[int, int] = field(default_factory=dict)
    error_bits: dict[int, int] = field(default_factory=dict)

    def expire(self, sim, step: int) -> None:
        for motor, until in list(self.vanished.items()):
            if step >= until:
                sim.reappear(motor)
                del self.vanished[motor]
        for motor, until in list(self.error_bits.items()):
            if step >= until:
                sim.set_error_bits(motor, 0)
                del self.error_bits[motor]


def inject_random_fault(
    sim, rng: random.Random, ids: list[int], deadline_ms: float, lasting: LastingFaults, step: int
) -> None:
    motor = rng.choice(ids)
    kind = rng.randrange(11)
    if kind == 0:
        sim.drop_replies(motor, 1)
    elif kind == 1:
        sim.corrupt_replies(motor, 1)
    elif kind == 2:  # within the deadline: must simply succeed
        sim.delay_replies(motor, rng.randrange(100, int(deadline_ms * 500)), 1)
    elif kind == 3:  # past the deadline: the reply arrives during a later transaction
        sim.delay_replies(motor, rng.randrange(int(deadline_ms * 1200), int(deadline_ms * 4000)), 1)
    elif kind == 4:
        sim.reply_as(motor, rng.choice([i for i in ids if i != motor]), 1)
    elif kind == 5:
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
        if rng.random() < 0.5:  # a header's worth of bytes that might begin a packet
            garbage = garbage[:2] + b"\xff\xff" + garbage[2:]
        sim.garbage_before_replies(motor, garbage, 1)
    elif kind == 6:
        sim.damage_instructions(1)
    elif kind == 7:
        sim.drop_instructions(1)
    elif kind == 8:
        sim.noise_before_instructions(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16))), 1)
    elif kind == 9:
        sim.vanish(motor)
        lasting.vanished[motor] = step + rng.randrange(1, 12)
    else:
        sim.set_error_bits(motor, 0x20 if sim.preset.protocol == "feetech" else 0x80)
        lasting.error_bits[motor] = step + rng.randrange(1, 6)


def run_schedule(robot: str, steps: int, seed: int) -> Tally:
    spec = ROBOTS[robot]
    rng = random.Random(seed)
    tally = Tally()
    with simulated_bus(robot, time_constant_s=0.0, seed=seed) as sim:
        motors = {m.name: Motor(m.id, m.model, MotorNormMode.RANGE_M100_100) for m in sim.preset.motors}
        names = list(motors)
        ids = [m.id for m in sim.preset.motors]
        bus = spec["bus"](sim.port, motors, latency_margin_ms=LATENCY_MARGIN_MS)
        bus.connect(handshake=False)
        distinct_values(sim, spec["read"], rng, spec["values"])
        deadline_ms = bus.servo_bus.timeout_ms(20, 6 * 15, 6)

        def check(register: str, values: dict[str, int]) -> None:
            for name, value in values.items():
                expected = sim.read(name, register)
                tally.values_checked += 1
                if value != expected:
                    tally.wrong_values.append(f"{register}[{name}] = {value}, register holds {expected}")

        lasting = LastingFaults()
        for step in range(steps):
            lasting.expire(sim, step)
            if rng.random() < 0.3:
                inject_random_fault(sim, rng, ids, deadline_ms, lasting, step)
            operation = rng.randrange(10)
            register = rng.choice(spec["read"])
            chosen = rng.sample(names, rng.randrange(1, len(names) + 1))
            tally.transactions += 1
            try:
                if operation < 5:
                    check(
                        register, bus.sync_read(register, names, normalize=False, num_retry=rng.randrange(3))
                    )
                elif operation < 7:
                    name = rng.choice(names)
                    check(
                        register,
                        {name: bus.read(register, name, normalize=False, num_retry=rng.randrange(2))},
                    )
                elif operation < 8:
                    check(register, bus.sync_read(register, chosen, normalize=False))
                elif operation < 9:
                    target = rng.choice(spec["write"])
                    bus.sync_write(target, {n: rng.choice(spec["values"]) for n in chosen}, normalize=False)
                else:
                    target = rng.choice(spec["write"])
                    bus.write(target, rng.choice(names), rng.choice(spec["values"]), normalize=False)
            except TYPED_BUS_ERRORS as error:
                tally.failed(error)

        # Faults stop. Late replies may still be on the line, up to the longest delay injected (4
        # deadlines), each failed fence waits one fence deadline; and a loaded machine may hold a
        # reply past its 5 ms margin now and then.
        sim.clear_faults()
        bus_recovers_within = math.ceil(4 * deadline_ms / bus.servo_bus.timeout_ms(8, 16, 1)) + 4
        failed_before_answering = 0
        while True:
            try:
                check("Present_Position", bus.sync_read("Present_Position", names, normalize=False))
                break
            except TYPED_BUS_ERRORS:
                failed_before_answering += 1
                assert failed_before_answering <= bus_recovers_within, "the bus did not recover"
        for _ in range(50):
            register = rng.choice(spec["read"])
            check(register, bus.sync_read(register, names, normalize=False, num_retry=3))
        bus.disconnect(disable_torque=False)
    return tally


@pytest.mark.parametrize(("robot", "seed"), [("so101", 11), ("koch", 12)])
def test_no_value_comes_from_another_transaction_under_random_faults(robot: str, seed: int) -> None:
    tally = run_schedule(robot, steps=3000, seed=seed)
    assert tally.wrong_values == [], f"{len(tally.wrong_values)} wrong values, e.g. {tally.wrong_values[:5]}"
    print(
        robot,
        tally.transactions,
        "transactions,",
        tally.values_checked,
        "values checked, failures:",
        tally.failures,
    )
    # The schedule did exercise failures and successes alike.
    assert sum(tally.failures.values()) > 100, tally.failures
    assert tally.values_checked > 5000
