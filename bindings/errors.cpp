// Maps dexloop's C++ exceptions to the classes of the same name in the Python module
// dexloop.errors, which defines them (so FrameTimestampError can also be a ValueError, as in
// LeRobot).
#include <Python.h>

#include "bindings.hpp"
#include "dexloop/error.hpp"

namespace nb = nanobind;

namespace dexloop::bindings {
namespace {

// Sets the pending Python error to dexloop.errors.<name>(message). The module is looked up when an
// error is raised rather than at import, so dexloop._core never imports the package during its own
// initialisation.
void raise_python(const char* name, const char* message) {
  PyObject* errors = PyImport_ImportModule("dexloop.errors");
  PyObject* type = errors != nullptr ? PyObject_GetAttrString(errors, name) : nullptr;
  Py_XDECREF(errors);
  if (type == nullptr) {
    // dexloop.errors unavailable (a broken install): keep the message, lose the precise class.
    PyErr_Clear();
    PyErr_SetString(PyExc_RuntimeError, message);
    return;
  }
  PyErr_SetString(type, message);
  Py_DECREF(type);
}

void translate(const std::exception_ptr& pointer, void*) {
  try {
    std::rethrow_exception(pointer);
  } catch (const FrameTimestampError& error) {
    raise_python("FrameTimestampError", error.what());
  } catch (const VideoDecodeError& error) {
    raise_python("VideoDecodeError", error.what());
  } catch (const VideoRemuxError& error) {
    raise_python("VideoRemuxError", error.what());
  } catch (const VideoEncodeError& error) {
    raise_python("VideoEncodeError", error.what());
  } catch (const BusTimeoutError& error) {
    raise_python("BusTimeoutError", error.what());
  } catch (const BusProtocolError& error) {
    raise_python("BusProtocolError", error.what());
  } catch (const ServoError& error) {
    raise_python("ServoError", error.what());
  } catch (const BusError& error) {
    raise_python("BusError", error.what());
  } catch (const DatasetError& error) {
    raise_python("DatasetError", error.what());
  } catch (const Error& error) {
    raise_python("DexloopError", error.what());
  }
}

}  // namespace

void register_errors(nb::module_&) { nb::register_exception_translator(translate); }

}  // namespace dexloop::bindings
