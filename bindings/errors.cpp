// Raises each dexloop C++ exception as its class in the Python module dexloop.errors, which
// defines them (so FrameTimestampError can also be a ValueError, as in LeRobot). Both sides are
// written from one table, errors.toml: every C++ class names its Python class (python_class()).
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
  } catch (const Error& error) {
    raise_python(error.python_class(), error.what());
  }
}

}  // namespace

void register_errors(nb::module_&) { nb::register_exception_translator(translate); }

}  // namespace dexloop::bindings
