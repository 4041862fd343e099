"""Records the instruction packets the vendors' Python SDKs send, as test vectors for dexloop's driver.

Run by hand in the LeRobot environment (shared/tools/lerobot-peer.sh installs feetech-servo-sdk and
dynamixel-sdk, the SDKs LeRobot drives its buses with):

    /tmp/lerobot-peer/bin/python tools/sdk_reference/record_sdk_packets.py > tests/data/bus/sdk_packets.txt

Each line is `<vendor><protocol> <operation> <arguments...> | <packet hex>`; cpp/tests/test_sdk_packets.cpp
performs the same operation with dexloop's ServoBus and compares the bytes on the wire.

Not recorded: a Dynamixel write whose data holds FF FF FD. The protocol requires a stuffed FD there and
dexloop sends it; dynamixel-sdk's Python addStuffing builds the stuffed packet in a new list and
txPacket discards it, so the SDK sends the unstuffed bytes (cpp/tests/test_bus_protocol.cpp covers it).
"""

from __future__ import annotations

import dynamixel_sdk as dxl
import scservo_sdk as scs


class RecordingPort:
    """Stands in for the SDKs' PortHandler: keeps what is written, never answers."""

    def __init__(self):
        self.sent: list[bytes] = []
        self.is_using = False

    def clearPort(self):  # the SDK's method names
        pass

    def writePort(self, packet):
        self.sent.append(bytes(packet))
        return len(packet)

    def readPort(self, length):
        return []

    def setPacketTimeout(self, length):
        pass

    def setPacketTimeoutMillis(self, ms):
        pass

    def isPacketTimeout(self):
        return True

    def getBaudRate(self):
        return 1_000_000

    def take(self) -> str:
        packet = self.sent.pop(0).hex()
        self.sent.clear()
        self.is_using = False
        return packet


def feetech(protocol: int) -> list[str]:
    port, handler = RecordingPort(), scs.PacketHandler(protocol)
    tag = f"feetech{protocol}"
    lines = []
    for motor in (1, 6, 252):
        handler.ping(port, motor)
        lines.append(f"{tag} ping {motor} | {port.take()}")
    for motor, address, size in ((1, 56, 2), (3, 5, 1), (6, 3, 2), (2, 31, 2)):
        reader = handler.read1ByteTxRx if size == 1 else handler.read2ByteTxRx
        reader(port, motor, address)
        lines.append(f"{tag} read {motor} {address} {size} | {port.take()}")
    for motor, address, size, value in (
        (1, 42, 2, 2047),
        (2, 40, 1, 1),
        (5, 31, 2, 0x0FFF),
        (6, 55, 1, 0),
        (3, 42, 2, 0xFFFF),
    ):
        if size == 1:
            handler.write1ByteTxRx(port, motor, address, value)
        else:
            handler.write2ByteTxRx(port, motor, address, value)
        lines.append(f"{tag} write {motor} {address} {size} {value} | {port.take()}")
    if protocol == 0:  # the SCS series has no SYNC_READ
        for ids, address, size in (([1, 2, 3, 4, 5, 6], 56, 2), ([4], 3, 2), ([1, 7, 12], 0, 1)):
            reader = scs.GroupSyncRead(port, handler, address, size)
            for motor in ids:
                reader.addParam(motor)
            reader.txPacket()
            lines.append(f"{tag} sync_read {address} {size} {','.join(map(str, ids))} | {port.take()}")
    for ids, address, size, values in (
        ([1, 2, 3, 4, 5, 6], 42, 2, [2047, 0, 4095, 100, 3000, 0x8005]),
        ([1, 2], 40, 1, [1, 0]),
    ):
        writer = scs.GroupSyncWrite(port, handler, address, size)
        for motor, value in zip(ids, values, strict=True):
            data = [scs.SCS_LOBYTE(value), scs.SCS_HIBYTE(value)] if size == 2 else [value]
            writer.addParam(motor, data)
        writer.txPacket()
        lines.append(
            f"{tag} sync_write {address} {size} {','.join(map(str, ids))} {','.join(map(str, values))} | {port.take()}"
        )
    return lines


def dynamixel() -> list[str]:
    port, handler = RecordingPort(), dxl.PacketHandler(2.0)
    tag = "dynamixel2"
    lines = []
    for motor in (1, 6, 252):
        handler.ping(port, motor)
        lines.append(f"{tag} ping {motor} | {port.take()}")
    for motor, address, size in ((1, 132, 4), (3, 7, 1), (6, 0, 2), (2, 20, 4)):
        {1: handler.read1ByteTxRx, 2: handler.read2ByteTxRx, 4: handler.read4ByteTxRx}[size](
            port, motor, address
        )
        lines.append(f"{tag} read {motor} {address} {size} | {port.take()}")
    for motor, address, size, value in (
        (1, 116, 4, 2047),
        (2, 64, 1, 1),
        (5, 20, 4, 0xFFFFF830),
        (6, 102, 2, 0xFFF6),
    ):
        {1: handler.write1ByteTxRx, 2: handler.write2ByteTxRx, 4: handler.write4ByteTxRx}[size](
            port, motor, address, value
        )
        lines.append(f"{tag} write {motor} {address} {size} {value} | {port.take()}")
    for ids, address, size in (([1, 2, 3, 4, 5, 6], 132, 4), ([4], 0, 2), ([1, 7, 12], 64, 1)):
        for fast in (False, True):
            reader = dxl.GroupSyncRead(port, handler, address, size)
            for motor in ids:
                reader.addParam(motor)
            reader.fastSyncReadTxPacket() if fast else reader.txPacket()
            name = "fast_sync_read" if fast else "sync_read"
            lines.append(f"{tag} {name} {address} {size} {','.join(map(str, ids))} | {port.take()}")
    for ids, address, size, values in (
        ([1, 2, 3, 4, 5, 6], 116, 4, [2047, 0, 4095, 100, 3000, 0xFFFFFFFB]),
        ([1, 2], 64, 1, [1, 0]),
    ):
        writer = dxl.GroupSyncWrite(port, handler, address, size)
        for motor, value in zip(ids, values, strict=True):
            writer.addParam(motor, list(value.to_bytes(size, "little")))
        writer.txPacket()
        lines.append(
            f"{tag} sync_write {address} {size} {','.join(map(str, ids))} {','.join(map(str, values))} | {port.take()}"
        )
    return lines


if __name__ == "__main__":
    print(
        "# Instruction packets of feetech-servo-sdk and dynamixel-sdk; tools/sdk_reference/record_sdk_packets.py"
    )
    for line in feetech(0) + feetech(1) + dynamixel():
        print(line)
