// The wire protocols a bus speaks, one vocabulary for the driver, the simulator and Python (bound
// as dexloop._core.bus.Protocol).
#pragma once

#include <cstdint>
#include <string_view>

#include "dexloop/bus/control_table.hpp"

namespace dexloop::bus {

enum class Protocol : uint8_t {
  kFeetech,     // Feetech protocol 0: STS/SMS series, little-endian
  kFeetechScs,  // Feetech protocol 1: SCS series, big-endian
  kDynamixel,   // Dynamixel Protocol 2.0
};

Vendor vendor_of(Protocol protocol);
// LeRobot's protocol numbers: 0 (STS/SMS), 1 (SCS), 2 (Dynamixel 2.0).
int protocol_version(Protocol protocol);
// The protocol of a vendor's version number; std::invalid_argument for a pair that does not exist.
Protocol protocol_of(Vendor vendor, int version);
// "feetech", "feetech_scs" or "dynamixel"; parse_protocol throws std::invalid_argument otherwise.
std::string_view protocol_name(Protocol protocol);
Protocol parse_protocol(std::string_view name);

}  // namespace dexloop::bus
