#include "motor_model.hpp"

namespace dexloop::servo_sim {

[[noreturn]] void throw_errno(const std::string& what) {
  throw Error("servo simulator: " + what + ": " + std::strerror(errno));
}

int64_t max_value(const Register& reg) {
  switch (reg.encoding.kind) {
    case bus::SignEncoding::kSignMagnitude:
      return (int64_t{1} << reg.encoding.sign_bit) - 1;
    case bus::SignEncoding::kTwosComplement:
      return (int64_t{1} << (8 * reg.size - 1)) - 1;
    case bus::SignEncoding::kNone:
      break;
  }
  return (int64_t{1} << (8 * reg.size)) - 1;
}

int64_t min_value(const Register& reg) {
  switch (reg.encoding.kind) {
    case bus::SignEncoding::kSignMagnitude:
      return -max_value(reg);
    case bus::SignEncoding::kTwosComplement:
      return -(int64_t{1} << (8 * reg.size - 1));
    case bus::SignEncoding::kNone:
      break;
  }
  return 0;
}

bool consume(int& count) {
  if (count == 0) return false;
  if (count > 0) --count;
  return true;
}

Registers find_registers(const bus::ModelInfo& model) {
  auto find = [&](std::string_view name) { return model.find(name); };
  Registers r;
  r.id = find("ID");
  r.baud_rate = find("Baud_Rate");
  r.return_delay = find("Return_Delay_Time");
  r.status_level = model.vendor == Vendor::kFeetech ? find("Response_Status_Level")
                                                    : find("Status_Return_Level");
  r.min_limit = find("Min_Position_Limit");
  r.max_limit = find("Max_Position_Limit");
  r.phase = find("Phase");
  r.homing_offset = find("Homing_Offset");
  r.operating_mode = find("Operating_Mode");
  r.drive_mode = find("Drive_Mode");
  r.secondary_id = find("Secondary_ID");
  r.torque_enable = find("Torque_Enable");
  r.goal_position = find("Goal_Position");
  r.goal_velocity = find("Goal_Velocity");
  r.present_position = find("Present_Position");
  r.present_velocity = find("Present_Velocity");
  r.present_load = find("Present_Load");
  r.present_current = find("Present_Current");
  r.present_pwm = find("Present_PWM");
  r.moving = find("Moving");
  r.moving_status = find("Moving_Status");
  r.status = find("Status");
  r.realtime_tick = find("Realtime_Tick");
  r.registered_instruction = find("Registered_Instruction");
  r.moving_threshold = find("Moving_Threshold");
  r.current_limit = find("Current_Limit");
  r.pwm_limit = find("PWM_Limit");
  return r;
}

void set_factory_values(Motor& m, uint8_t id, int baudrate, double position) {
  const bus::ModelInfo& model = *m.model;
  std::fill(m.memory.begin(), m.memory.end(), uint8_t{0});
  auto set = [&](std::string_view name, int64_t value) { m.set(model.find(name), value); };
  const int resolution = model.resolution;
  set("Model_Number", model.model_number);
  set("ID", id);
  set("Baud_Rate", model.baudrate_code(baudrate));
  set("Min_Position_Limit", 0);
  set("Max_Position_Limit", resolution - 1);
  set("Torque_Enable", 0);
  set("Present_Temperature", 30);
  if (model.vendor == Vendor::kFeetech) {
    // One firmware for the whole bus: LeRobot's handshake refuses motors whose versions differ.
    set("Firmware_Major_Version", 3);
    set("Firmware_Minor_Version", 10);
    // Feetech's STS memory table gives 0 (LeRobot's comment says 250); LeRobot writes 0 anyway.
    set("Return_Delay_Time", 0);
    set("Response_Status_Level", 1);
    set("Max_Temperature_Limit", 70);
    set("Max_Voltage_Limit", 140);
    set("Min_Voltage_Limit", 40);
    set("Max_Torque_Limit", 1000);
    // Bit 4 (angle feedback mode) set on the STS3215, as LeRobot's fix #3373 finds it.
    set("Phase", model.name == "sts3215" ? 0x10 : 0x00);
    set("Unloading_Condition", 0x2C);
    set("LED_Alarm_Condition", 0x2F);
    set("P_Coefficient", 32);
    set("D_Coefficient", 32);
    set("I_Coefficient", 0);
    set("Minimum_Startup_Force", 16);
    set("CW_Dead_Zone", 1);
    set("CCW_Dead_Zone", 1);
    set("Protection_Current", 511);
    set("Angular_Resolution", 1);
    set("Homing_Offset", 0);
    set("Operating_Mode", 0);
    set("Protective_Torque", 20);
    set("Protection_Time", 200);
    set("Overload_Torque", 80);
    set("Velocity_closed_loop_P_proportional_coefficient", 10);
    set("Over_Current_Protection_Time", 200);
    set("Velocity_closed_loop_I_integral_coefficient", 200);
    set("Torque_Limit", 1000);
    set("Lock", 0);
    set("Present_Voltage", 120);
    set("Moving_Velocity_Threshold", 2);
    set("DTs", 32);
    set("Velocity_Unit_factor", 1);
    set("Maximum_Velocity_Limit", 80);
    set("Maximum_Acceleration", 50);
  } else {
    const bool small = model.name.starts_with("xl330") || model.name.starts_with("xc330");
    const bool no_current = model.name == "xl430-w250" || model.name == "xc430-w150";
    const bool big = model.name.starts_with("xm540") || model.name.starts_with("xh540");
    set("Model_Information", 0);
    set("Firmware_Version", 48);
    set("Return_Delay_Time", 250);  // 500 us: the X series' factory value
    set("Drive_Mode", 0);
    set("Operating_Mode", 3);
    set("Secondary_ID", 255);
    set("Protocol_Type", 2);
    set("Homing_Offset", 0);
    set("Moving_Threshold", 10);
    set("Temperature_Limit", small ? 70 : 80);
    set("Max_Voltage_Limit", small ? 70 : 160);
    set("Min_Voltage_Limit", small ? 35 : 95);
    set("PWM_Limit", 885);
    set("Current_Limit", no_current ? 0 : (small ? 1750 : (big ? 2047 : 1193)));
    set("Acceleration_Limit", 32767);
    set("Velocity_Limit", small ? 445 : (no_current ? 265 : 200));
    set("Shutdown", 52);
    set("LED", 0);
    set("Status_Return_Level", 2);
    set("Velocity_I_Gain", small ? 1600 : 1920);
    set("Velocity_P_Gain", small ? 180 : 100);
    set("Position_P_Gain", small ? 400 : 800);
    set("Goal_PWM", 885);
    set("Goal_Current", no_current ? 0 : (small ? 1750 : (big ? 2047 : 1193)));
    set("Present_Input_Voltage", small ? 50 : 120);
  }
  m.actual = position;
  m.velocity = 0;
  m.error = 0;
  m.registered.reset();
}

double positive_fmod(double value, double modulus) {
  double r = std::fmod(value, modulus);
  return r < 0 ? r + modulus : r;
}

double direction(const Motor& m) {
  return m.vendor() == Vendor::kDynamixel && (m.value(m.regs.drive_mode) & 1) ? -1.0 : 1.0;
}

bool wraps(const Motor& m) {
  if (m.vendor() != Vendor::kFeetech) return false;
  if (m.model->protocol == 1) return true;
  return (m.value(m.regs.phase) & 0x10) == 0;
}

double present_continuous(const Motor& m, double actual) {
  const double offset = static_cast<double>(m.value(m.regs.homing_offset));
  if (m.vendor() == Vendor::kFeetech) {
    const double present = actual - offset;
    return wraps(m) ? positive_fmod(present, m.model->resolution) : present;
  }
  return direction(m) * actual + offset;
}

int64_t present_reported(const Motor& m) {
  const double offset = static_cast<double>(m.value(m.regs.homing_offset));
  if (m.vendor() == Vendor::kFeetech) {
    const int64_t present = std::llround(m.actual - offset);
    if (!wraps(m)) return present;
    const int64_t resolution = m.model->resolution;
    return ((present % resolution) + resolution) % resolution;
  }
  return std::llround(direction(m) * m.actual + offset);
}

double effective_goal(const Motor& m) {
  double goal = static_cast<double>(m.value(m.regs.goal_position));
  if (m.vendor() == Vendor::kFeetech) {
    const int64_t low = m.value(m.regs.min_limit);
    const int64_t high = m.value(m.regs.max_limit);
    if ((low != 0 || high != 0) && low <= high)
      goal = std::clamp(goal, static_cast<double>(low), static_cast<double>(high));
  }
  return goal;
}

Control control_of(const Motor& m) {
  if (!m.torque_on()) return Control::kHold;
  const int64_t mode = m.value(m.regs.operating_mode);
  if (m.vendor() == Vendor::kFeetech) {
    if (mode == 0) return Control::kPosition;
    if (mode == 1) return Control::kVelocity;
    return Control::kHold;
  }
  if (mode == 3 || mode == 4 || mode == 5) return Control::kPosition;
  if (mode == 1) return Control::kVelocity;
  return Control::kHold;
}

void write_feedback(Motor& m, Clock::time_point now, Clock::time_point epoch) {
  m.set(m.regs.present_position, present_reported(m));
  const bool torque = m.torque_on();
  const double error = torque ? m.error : 0.0;
  const bool moving = std::abs(m.velocity) > 1.0 || (torque && std::abs(error) >= 1.0);
  m.set(m.regs.moving, moving ? 1 : 0);
  if (m.vendor() == Vendor::kFeetech) {
    // Present_Velocity in steps/s; Present_Load in 0.1 % of full PWM, rising with the tracking
    // error and saturating at 100 %.
    const bool scs = m.model->protocol == 1;
    const int64_t velocity = std::llround(m.velocity);
    m.set(m.regs.present_velocity, scs ? std::abs(velocity) : velocity);
    const int64_t load = std::clamp<int64_t>(std::llround(2.0 * error), -1000, 1000);
    m.set(m.regs.present_load, scs ? std::abs(load) : load);
    m.set(m.regs.present_current, std::abs(load) / 2 + (torque ? 2 : 0));
    m.set(m.regs.status, m.faults.error_bits);
  } else {
    m.set(m.regs.present_velocity, std::llround(m.velocity / kDynamixelVelocityUnit));
    const int64_t current_limit = std::max<int64_t>(m.value(m.regs.current_limit), 1);
    m.set(m.regs.present_current,
          std::clamp<int64_t>(std::llround(2.0 * error), -current_limit, current_limit));
    const int64_t pwm_limit = m.value(m.regs.pwm_limit);
    m.set(m.regs.present_pwm,
          std::clamp<int64_t>(std::llround(3.0 * error), -pwm_limit, pwm_limit));
    const bool in_position = torque && std::abs(error) <= m.value(m.regs.moving_threshold);
    m.set(m.regs.moving_status, in_position ? 1 : 0);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - epoch).count();
    m.set(m.regs.realtime_tick, ms % 32768);
  }
}

void advance(Motor& m, Clock::time_point now, double time_constant, Clock::time_point epoch) {
  const double dt = std::max(0.0, std::chrono::duration<double>(now - m.last_update).count());
  m.last_update = now;
  const Control control = control_of(m);
  const double dir = direction(m);
  if (control == Control::kPosition) {
    const double goal = effective_goal(m);
    const double error = goal - present_continuous(m, m.actual);
    const double decay = time_constant > 0 ? std::exp(-dt / time_constant) : 0.0;
    // In the reported frame d(present) = direction * d(actual) (a wrap only changes the
    // reported value, never the direction of travel).
    m.actual += dir * error * (1.0 - decay);
    m.error = error * decay;
    m.velocity = time_constant > 0 ? m.error / time_constant : 0.0;
  } else if (control == Control::kVelocity) {
    const double velocity = m.vendor() == Vendor::kFeetech
                                ? static_cast<double>(m.value(m.regs.goal_velocity))
                                : m.value(m.regs.goal_velocity) * kDynamixelVelocityUnit;
    m.actual += dir * velocity * dt;
    m.velocity = velocity;
    m.error = 0;
  } else {
    m.velocity = 0;
    m.error = 0;
  }
  write_feedback(m, now, epoch);
}

dynamixel::Scan scan_instruction(std::span<const uint8_t> buffer, std::span<uint8_t> scratch) {
  dynamixel::Scan scan = dynamixel::scan(buffer, dynamixel::FrameKind::kInstruction, scratch);
  constexpr size_t kBare = dynamixel::kHeaderSize + 3;  // INST and CRC
  if (scan.outcome != dynamixel::Scan::kNeedMore || buffer.size() - scan.skip < kBare) return scan;
  const std::span<const uint8_t> packet = buffer.subspan(scan.skip, kBare);
  if (packet[0] != 0xFF || packet[1] != 0xFF || packet[2] != 0xFD || packet[3] != 0x00 ||
      packet[5] != 3 || packet[6] != 0 || packet[7] == dynamixel::kStatus)
    return scan;
  scan.size = kBare;
  const uint16_t crc = packet[8] | static_cast<uint16_t>(packet[9] << 8);
  if (dynamixel::crc16(packet.first(8)) != crc) {
    scan.outcome = dynamixel::Scan::kCorrupt;
    return scan;
  }
  scan.outcome = dynamixel::Scan::kFrame;
  scan.frame = dynamixel::Frame{packet[4], packet[7], scratch.first(0)};
  return scan;
}

}  // namespace dexloop::servo_sim
