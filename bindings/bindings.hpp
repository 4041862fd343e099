// Registration functions of the per-area binding files, called from module.cpp.
#pragma once

#include <nanobind/nanobind.h>

#include <string>
#include <variant>

#include "dexloop/bus/protocol.hpp"

namespace dexloop::bindings {

// A protocol given from Python: the Protocol enum, or its name ("feetech", "feetech_scs",
// "dynamixel") parsed by the core's one parser.
using ProtocolArg = std::variant<bus::Protocol, std::string>;
bus::Protocol protocol_from(const ProtocolArg& protocol);

void register_errors(nanobind::module_& module);
void register_video(nanobind::module_& module);
void register_video_encoding(nanobind::module_& module);
void register_video_remux(nanobind::module_& module);
void register_dataset(nanobind::module_& module);
void register_bus(nanobind::module_& module);
void register_sim(nanobind::module_& module);
void register_control(nanobind::module_& module);

}  // namespace dexloop::bindings
