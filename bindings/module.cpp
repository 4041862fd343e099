// dexloop._core: the native half of dexloop. Users import the Python package `dexloop`, which
// re-exports what they need from here; this module's submodules mirror the C++ areas.
#include "bindings.hpp"

namespace nb = nanobind;

NB_MODULE(_core, module) {
  module.doc() =
      "dexloop's native core: video decoding and encoding, dataset index maths, servo buses, the "
      "control loop";
  // Objects still referenced from cycles torch or numpy hold at interpreter exit are reclaimed by
  // the OS; nanobind's leak report would only be noise for users.
  nb::set_leak_warnings(false);
  dexloop::bindings::register_errors(module);
  nb::module_ video =
      module.def_submodule("video", "FFmpeg-backed frame-accurate video decoding and encoding");
  dexloop::bindings::register_video(video);
  dexloop::bindings::register_video_encoding(video);
  dexloop::bindings::register_video_remux(video);
  nb::module_ dataset = module.def_submodule("dataset", "Episode index maths of delta_timestamps");
  dexloop::bindings::register_dataset(dataset);
  nb::module_ bus = module.def_submodule(
      "bus", "Feetech and Dynamixel servo bus transactions and control tables");
  dexloop::bindings::register_bus(bus);
  nb::module_ sim =
      module.def_submodule("sim", "Simulated Feetech and Dynamixel servo buses on a pty");
  dexloop::bindings::register_sim(sim);
  nb::module_ control = module.def_submodule(
      "control", "The real-time control loop, its action queue, safety filter and histograms");
  dexloop::bindings::register_control(control);
}
