// Control tables of the servo models dexloop drives: register names, addresses, sizes and sign
// encodings, exactly as LeRobot names them (motors/feetech/tables.py, motors/dynamixel/tables.py),
// plus what a simulator needs (read-only and persistent areas, memory size). One source for the
// driver, the Python API (through dexloop._core) and the simulator.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "dexloop/bus/encoding.hpp"

namespace dexloop::bus {

enum class Vendor : uint8_t { kFeetech, kDynamixel };

struct Register {
  std::string_view name;
  uint16_t address = 0;
  uint8_t size = 0;  // bytes: 1, 2 or 4
  bool read_only = false;
  SignEncoding encoding{};
};

struct BaudRateCode {
  int baudrate = 0;
  uint8_t code = 0;  // value of the Baud_Rate register
};

struct ModelInfo {
  std::string_view name;  // LeRobot's model key, e.g. "sts3215", "xl330-m288"
  Vendor vendor = Vendor::kFeetech;
  int protocol = 0;  // Feetech: 0 (STS/SMS, little-endian) or 1 (SCS, big-endian); Dynamixel: 2
  uint16_t model_number = 0;
  int resolution = 4096;        // position steps per turn
  uint16_t persistent_end = 0;  // registers below this address are EEPROM
  uint16_t memory_size = 0;     // bytes of control table a servo holds
  std::span<const Register> registers;
  std::span<const BaudRateCode> baudrates;
  std::span<const uint8_t> operating_modes;  // allowed Operating_Mode values (Dynamixel)

  ByteOrder byte_order() const { return protocol == 1 ? ByteOrder::kBig : ByteOrder::kLittle; }
  const Register* find(std::string_view register_name) const;
  // The Baud_Rate register code of `baudrate`, or -1 when the model does not support it.
  int baudrate_code(int baudrate) const;
  // The baud rate of a Baud_Rate register code, or -1.
  int baudrate_of_code(uint8_t code) const;
};

// Every model in LeRobot's tables, including the generic series keys ("sts_series", "x_series").
std::span<const ModelInfo> all_models();
const ModelInfo* find_model(std::string_view name);
// The model with this model number for a vendor (series keys excluded), or nullptr.
const ModelInfo* find_model_number(Vendor vendor, uint16_t model_number);

// Baud rates LeRobot scans when looking for motors.
std::span<const int> scan_baudrates(Vendor vendor);

}  // namespace dexloop::bus
