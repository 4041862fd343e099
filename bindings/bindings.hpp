// Registration functions of the per-area binding files, called from module.cpp.
#pragma once

#include <nanobind/nanobind.h>

namespace dexloop::bindings {

void register_errors(nanobind::module_& module);
void register_video(nanobind::module_& module);
void register_video_encoding(nanobind::module_& module);
void register_video_remux(nanobind::module_& module);
void register_dataset(nanobind::module_& module);
void register_bus(nanobind::module_& module);
void register_sim(nanobind::module_& module);
void register_control(nanobind::module_& module);

}  // namespace dexloop::bindings
