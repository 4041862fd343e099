#include "dexloop/bus/protocol.hpp"

#include <stdexcept>
#include <string>

namespace dexloop::bus {

Vendor vendor_of(Protocol protocol) {
  return protocol == Protocol::kDynamixel ? Vendor::kDynamixel : Vendor::kFeetech;
}

int protocol_version(Protocol protocol) {
  switch (protocol) {
    case Protocol::kFeetech:
      return 0;
    case Protocol::kFeetechScs:
      return 1;
    case Protocol::kDynamixel:
      break;
  }
  return 2;
}

Protocol protocol_of(Vendor vendor, int version) {
  if (vendor == Vendor::kFeetech && version == 0) return Protocol::kFeetech;
  if (vendor == Vendor::kFeetech && version == 1) return Protocol::kFeetechScs;
  if (vendor == Vendor::kDynamixel && version == 2) return Protocol::kDynamixel;
  throw std::invalid_argument(
      "Feetech buses speak protocol 0 or 1, Dynamixel buses protocol 2; got " +
      std::string(vendor == Vendor::kFeetech ? "feetech" : "dynamixel") + " protocol " +
      std::to_string(version));
}

std::string_view protocol_name(Protocol protocol) {
  switch (protocol) {
    case Protocol::kFeetech:
      return "feetech";
    case Protocol::kFeetechScs:
      return "feetech_scs";
    case Protocol::kDynamixel:
      break;
  }
  return "dynamixel";
}

Protocol parse_protocol(std::string_view name) {
  if (name == "feetech") return Protocol::kFeetech;
  if (name == "feetech_scs") return Protocol::kFeetechScs;
  if (name == "dynamixel") return Protocol::kDynamixel;
  throw std::invalid_argument("unknown servo protocol '" + std::string(name) +
                              "': expected 'feetech', 'feetech_scs' or 'dynamixel'");
}

}  // namespace dexloop::bus
