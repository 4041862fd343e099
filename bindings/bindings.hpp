// Registration functions of the per-area binding files, called from module.cpp.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include "dexloop/bus/protocol.hpp"

namespace dexloop::bindings {

// A protocol given from Python: the Protocol enum, or its name ("feetech", "feetech_scs",
// "dynamixel") parsed by the core's one parser.
using ProtocolArg = std::variant<bus::Protocol, std::string>;
bus::Protocol protocol_from(const ProtocolArg& protocol);

// A new numpy array of `shape` for the core to fill through data(); Python owns it and frees it
// with its last reference.
template <typename T>
nanobind::ndarray<nanobind::numpy, T> new_array(const std::vector<size_t>& shape) {
  size_t count = 1;
  for (size_t extent : shape) count *= extent;
  T* data = new T[count > 0 ? count : 1];
  nanobind::capsule owner(data, [](void* pointer) noexcept { delete[] static_cast<T*>(pointer); });
  return nanobind::ndarray<nanobind::numpy, T>(data, shape.size(), shape.data(), owner);
}

void register_errors(nanobind::module_& module);
void register_video(nanobind::module_& module);
void register_video_encoding(nanobind::module_& module);
void register_video_remux(nanobind::module_& module);
void register_dataset(nanobind::module_& module);
void register_bus(nanobind::module_& module);
void register_sim(nanobind::module_& module);
void register_control(nanobind::module_& module);

}  // namespace dexloop::bindings
