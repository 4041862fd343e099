#include <algorithm>
#include <array>

#include "dexloop/bus/control_table.hpp"

namespace dexloop::bus {
namespace {

constexpr SignEncoding kUnsigned{};
constexpr SignEncoding sign_magnitude(uint8_t bit) { return {SignEncoding::kSignMagnitude, bit}; }
constexpr SignEncoding kTwos{SignEncoding::kTwosComplement, 0};
constexpr bool RO = true;
constexpr bool RW = false;

// Feetech STS/SMS series (protocol 0): EPROM below 40.
constexpr Register kStsRegisters[] = {
    {"Firmware_Major_Version", 0, 1, RO, kUnsigned},
    {"Firmware_Minor_Version", 1, 1, RO, kUnsigned},
    {"Model_Number", 3, 2, RO, kUnsigned},
    {"ID", 5, 1, RW, kUnsigned},
    {"Baud_Rate", 6, 1, RW, kUnsigned},
    {"Return_Delay_Time", 7, 1, RW, kUnsigned},
    {"Response_Status_Level", 8, 1, RW, kUnsigned},
    {"Min_Position_Limit", 9, 2, RW, kUnsigned},
    {"Max_Position_Limit", 11, 2, RW, kUnsigned},
    {"Max_Temperature_Limit", 13, 1, RW, kUnsigned},
    {"Max_Voltage_Limit", 14, 1, RW, kUnsigned},
    {"Min_Voltage_Limit", 15, 1, RW, kUnsigned},
    {"Max_Torque_Limit", 16, 2, RW, kUnsigned},
    {"Phase", 18, 1, RW, kUnsigned},
    {"Unloading_Condition", 19, 1, RW, kUnsigned},
    {"LED_Alarm_Condition", 20, 1, RW, kUnsigned},
    {"P_Coefficient", 21, 1, RW, kUnsigned},
    {"D_Coefficient", 22, 1, RW, kUnsigned},
    {"I_Coefficient", 23, 1, RW, kUnsigned},
    {"Minimum_Startup_Force", 24, 2, RW, kUnsigned},
    {"CW_Dead_Zone", 26, 1, RW, kUnsigned},
    {"CCW_Dead_Zone", 27, 1, RW, kUnsigned},
    {"Protection_Current", 28, 2, RW, kUnsigned},
    {"Angular_Resolution", 30, 1, RW, kUnsigned},
    {"Homing_Offset", 31, 2, RW, sign_magnitude(11)},
    {"Operating_Mode", 33, 1, RW, kUnsigned},
    {"Protective_Torque", 34, 1, RW, kUnsigned},
    {"Protection_Time", 35, 1, RW, kUnsigned},
    {"Overload_Torque", 36, 1, RW, kUnsigned},
    {"Velocity_closed_loop_P_proportional_coefficient", 37, 1, RW, kUnsigned},
    {"Over_Current_Protection_Time", 38, 1, RW, kUnsigned},
    {"Velocity_closed_loop_I_integral_coefficient", 39, 1, RW, kUnsigned},
    {"Torque_Enable", 40, 1, RW, kUnsigned},
    {"Acceleration", 41, 1, RW, kUnsigned},
    {"Goal_Position", 42, 2, RW, sign_magnitude(15)},
    {"Goal_Time", 44, 2, RW, kUnsigned},
    {"Goal_Velocity", 46, 2, RW, sign_magnitude(15)},
    {"Torque_Limit", 48, 2, RW, kUnsigned},
    {"Lock", 55, 1, RW, kUnsigned},
    {"Present_Position", 56, 2, RO, sign_magnitude(15)},
    {"Present_Velocity", 58, 2, RO, sign_magnitude(15)},
    {"Present_Load", 60, 2, RO, sign_magnitude(10)},
    {"Present_Voltage", 62, 1, RO, kUnsigned},
    {"Present_Temperature", 63, 1, RO, kUnsigned},
    {"Status", 65, 1, RO, kUnsigned},
    {"Moving", 66, 1, RO, kUnsigned},
    {"Present_Current", 69, 2, RO, kUnsigned},
    {"Goal_Position_2", 71, 2, RO, kUnsigned},
    {"Moving_Velocity", 80, 1, RW, kUnsigned},
    {"Moving_Velocity_Threshold", 80, 1, RW, kUnsigned},
    {"DTs", 81, 1, RW, kUnsigned},
    {"Velocity_Unit_factor", 82, 1, RW, kUnsigned},
    {"Hts", 83, 1, RW, kUnsigned},
    {"Maximum_Velocity_Limit", 84, 1, RW, kUnsigned},
    {"Maximum_Acceleration", 85, 1, RW, kUnsigned},
    // LeRobot's key carries a trailing space.
    {"Acceleration_Multiplier ", 86, 1, RW, kUnsigned},
};

// Feetech SCS series (protocol 1, big-endian): no sign encodings.
constexpr Register kScsRegisters[] = {
    {"Firmware_Major_Version", 0, 1, RO, kUnsigned},
    {"Firmware_Minor_Version", 1, 1, RO, kUnsigned},
    {"Model_Number", 3, 2, RO, kUnsigned},
    {"ID", 5, 1, RW, kUnsigned},
    {"Baud_Rate", 6, 1, RW, kUnsigned},
    {"Return_Delay_Time", 7, 1, RW, kUnsigned},
    {"Response_Status_Level", 8, 1, RW, kUnsigned},
    {"Min_Position_Limit", 9, 2, RW, kUnsigned},
    {"Max_Position_Limit", 11, 2, RW, kUnsigned},
    {"Max_Temperature_Limit", 13, 1, RW, kUnsigned},
    {"Max_Voltage_Limit", 14, 1, RW, kUnsigned},
    {"Min_Voltage_Limit", 15, 1, RW, kUnsigned},
    {"Max_Torque_Limit", 16, 2, RW, kUnsigned},
    {"Phase", 18, 1, RW, kUnsigned},
    {"Unloading_Condition", 19, 1, RW, kUnsigned},
    {"LED_Alarm_Condition", 20, 1, RW, kUnsigned},
    {"P_Coefficient", 21, 1, RW, kUnsigned},
    {"D_Coefficient", 22, 1, RW, kUnsigned},
    {"I_Coefficient", 23, 1, RW, kUnsigned},
    {"Minimum_Startup_Force", 24, 2, RW, kUnsigned},
    {"CW_Dead_Zone", 26, 1, RW, kUnsigned},
    {"CCW_Dead_Zone", 27, 1, RW, kUnsigned},
    {"Protective_Torque", 37, 1, RW, kUnsigned},
    {"Protection_Time", 38, 1, RW, kUnsigned},
    {"Torque_Enable", 40, 1, RW, kUnsigned},
    {"Acceleration", 41, 1, RW, kUnsigned},
    {"Goal_Position", 42, 2, RW, kUnsigned},
    {"Running_Time", 44, 2, RW, kUnsigned},
    {"Goal_Velocity", 46, 2, RW, kUnsigned},
    {"Lock", 48, 1, RW, kUnsigned},
    {"Present_Position", 56, 2, RO, kUnsigned},
    {"Present_Velocity", 58, 2, RO, kUnsigned},
    {"Present_Load", 60, 2, RO, kUnsigned},
    {"Present_Voltage", 62, 1, RO, kUnsigned},
    {"Present_Temperature", 63, 1, RO, kUnsigned},
    {"Sync_Write_Flag", 64, 1, RO, kUnsigned},
    {"Status", 65, 1, RO, kUnsigned},
    {"Moving", 66, 1, RO, kUnsigned},
    {"PWM_Maximum_Step", 78, 1, RW, kUnsigned},
    {"Moving_Velocity_Threshold*50", 79, 1, RW, kUnsigned},
    {"DTs", 80, 1, RW, kUnsigned},
    {"Minimum_Velocity_Limit*50", 81, 1, RW, kUnsigned},
    {"Maximum_Velocity_Limit*50", 82, 1, RW, kUnsigned},
    {"Acceleration_2", 83, 1, RW, kUnsigned},
};

// Dynamixel X series (protocol 2.0): EEPROM below 64.
constexpr Register kXRegisters[] = {
    {"Model_Number", 0, 2, RO, kUnsigned},
    {"Model_Information", 2, 4, RO, kUnsigned},
    {"Firmware_Version", 6, 1, RO, kUnsigned},
    {"ID", 7, 1, RW, kUnsigned},
    {"Baud_Rate", 8, 1, RW, kUnsigned},
    {"Return_Delay_Time", 9, 1, RW, kUnsigned},
    {"Drive_Mode", 10, 1, RW, kUnsigned},
    {"Operating_Mode", 11, 1, RW, kUnsigned},
    {"Secondary_ID", 12, 1, RW, kUnsigned},
    {"Protocol_Type", 13, 1, RW, kUnsigned},
    {"Homing_Offset", 20, 4, RW, kTwos},
    {"Moving_Threshold", 24, 4, RW, kUnsigned},
    {"Temperature_Limit", 31, 1, RW, kUnsigned},
    {"Max_Voltage_Limit", 32, 2, RW, kUnsigned},
    {"Min_Voltage_Limit", 34, 2, RW, kUnsigned},
    {"PWM_Limit", 36, 2, RW, kUnsigned},
    {"Current_Limit", 38, 2, RW, kUnsigned},
    {"Acceleration_Limit", 40, 4, RW, kUnsigned},
    {"Velocity_Limit", 44, 4, RW, kUnsigned},
    {"Max_Position_Limit", 48, 4, RW, kUnsigned},
    {"Min_Position_Limit", 52, 4, RW, kUnsigned},
    {"Shutdown", 63, 1, RW, kUnsigned},
    {"Torque_Enable", 64, 1, RW, kUnsigned},
    {"LED", 65, 1, RW, kUnsigned},
    {"Status_Return_Level", 68, 1, RW, kUnsigned},
    {"Registered_Instruction", 69, 1, RO, kUnsigned},
    {"Hardware_Error_Status", 70, 1, RO, kUnsigned},
    {"Velocity_I_Gain", 76, 2, RW, kUnsigned},
    {"Velocity_P_Gain", 78, 2, RW, kUnsigned},
    {"Position_D_Gain", 80, 2, RW, kUnsigned},
    {"Position_I_Gain", 82, 2, RW, kUnsigned},
    {"Position_P_Gain", 84, 2, RW, kUnsigned},
    {"Feedforward_2nd_Gain", 88, 2, RW, kUnsigned},
    {"Feedforward_1st_Gain", 90, 2, RW, kUnsigned},
    {"Bus_Watchdog", 98, 1, RW, kUnsigned},
    {"Goal_PWM", 100, 2, RW, kTwos},
    {"Goal_Current", 102, 2, RW, kTwos},
    {"Goal_Velocity", 104, 4, RW, kTwos},
    {"Profile_Acceleration", 108, 4, RW, kUnsigned},
    {"Profile_Velocity", 112, 4, RW, kUnsigned},
    {"Goal_Position", 116, 4, RW, kTwos},
    {"Realtime_Tick", 120, 2, RO, kUnsigned},
    {"Moving", 122, 1, RO, kUnsigned},
    {"Moving_Status", 123, 1, RO, kUnsigned},
    {"Present_PWM", 124, 2, RO, kTwos},
    {"Present_Current", 126, 2, RO, kTwos},
    {"Present_Velocity", 128, 4, RO, kTwos},
    {"Present_Position", 132, 4, RO, kTwos},
    {"Velocity_Trajectory", 136, 4, RO, kUnsigned},
    {"Position_Trajectory", 140, 4, RO, kUnsigned},
    {"Present_Input_Voltage", 144, 2, RO, kUnsigned},
    {"Present_Temperature", 146, 1, RO, kUnsigned},
};

constexpr BaudRateCode kFeetechBaudrates[] = {
    {1'000'000, 0}, {500'000, 1}, {250'000, 2}, {128'000, 3},
    {115'200, 4},   {57'600, 5},  {38'400, 6},  {19'200, 7},
};
constexpr BaudRateCode kDynamixelBaudrates[] = {
    {9'600, 0},     {57'600, 1},    {115'200, 2},   {1'000'000, 3},
    {2'000'000, 4}, {3'000'000, 5}, {4'000'000, 6},
};

constexpr uint8_t kAllModes[] = {0, 1, 3, 4, 5, 16};
constexpr uint8_t kW150W250Modes[] = {1, 3, 4, 16};

constexpr ModelInfo feetech(std::string_view name, int protocol, uint16_t number) {
  bool sts = protocol == 0;
  return ModelInfo{
      name,
      Vendor::kFeetech,
      protocol,
      number,
      sts ? 4096 : 1024,
      40,
      87,
      sts ? std::span<const Register>(kStsRegisters) : std::span<const Register>(kScsRegisters),
      kFeetechBaudrates,
      {}};
}

constexpr ModelInfo dynamixel(std::string_view name, uint16_t number,
                              std::span<const uint8_t> modes) {
  return ModelInfo{name,        Vendor::kDynamixel,  2,    number, 4096, 64, 147,
                   kXRegisters, kDynamixelBaudrates, modes};
}

// Model number 0 marks LeRobot's generic series keys.
constexpr ModelInfo kModels[] = {
    feetech("sts3215", 0, 777),
    feetech("sts3250", 0, 2825),
    feetech("sm8512bl", 0, 11272),
    feetech("scs0009", 1, 1284),
    feetech("sts_series", 0, 0),
    feetech("sms_series", 0, 0),
    feetech("scs_series", 1, 0),
    dynamixel("xl330-m077", 1190, kAllModes),
    dynamixel("xl330-m288", 1200, kAllModes),
    dynamixel("xl430-w250", 1060, kW150W250Modes),
    dynamixel("xm430-w350", 1020, kAllModes),
    dynamixel("xm540-w270", 1120, kAllModes),
    dynamixel("xc430-w150", 1070, kW150W250Modes),
    dynamixel("xh540-w150", 1110, kAllModes),
    dynamixel("xc330-t288", 1220, kAllModes),
    dynamixel("xc330-t181", 1210, kAllModes),
    dynamixel("x_series", 0, kAllModes),
};

constexpr int kFeetechScan[] = {4'800,   9'600,   14'400,  19'200,  38'400,   57'600,
                                115'200, 128'000, 250'000, 500'000, 1'000'000};
constexpr int kDynamixelScan[] = {9'600,     19'200,    38'400,    57'600,    115'200,   230'400,
                                  460'800,   500'000,   576'000,   921'600,   1'000'000, 1'152'000,
                                  2'000'000, 2'500'000, 3'000'000, 3'500'000, 4'000'000};

}  // namespace

const Register* ModelInfo::find(std::string_view register_name) const {
  auto found = std::find_if(registers.begin(), registers.end(),
                            [&](const Register& reg) { return reg.name == register_name; });
  return found == registers.end() ? nullptr : &*found;
}

int ModelInfo::baudrate_code(int baudrate) const {
  for (const BaudRateCode& entry : baudrates) {
    if (entry.baudrate == baudrate) return entry.code;
  }
  return -1;
}

int ModelInfo::baudrate_of_code(uint8_t code) const {
  for (const BaudRateCode& entry : baudrates) {
    if (entry.code == code) return entry.baudrate;
  }
  return -1;
}

std::span<const ModelInfo> all_models() { return kModels; }

const ModelInfo* find_model(std::string_view name) {
  for (const ModelInfo& model : kModels) {
    if (model.name == name) return &model;
  }
  return nullptr;
}

const ModelInfo* find_model_number(Vendor vendor, uint16_t model_number) {
  for (const ModelInfo& model : kModels) {
    if (model.vendor == vendor && model.model_number == model_number && model_number != 0)
      return &model;
  }
  return nullptr;
}

std::span<const int> scan_baudrates(Vendor vendor) {
  return vendor == Vendor::kFeetech ? std::span<const int>(kFeetechScan)
                                    : std::span<const int>(kDynamixelScan);
}

}  // namespace dexloop::bus
