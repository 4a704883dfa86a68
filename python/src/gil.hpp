// A Python object owned by C++ code that may copy or drop it without the
// GIL (the HTTP helper's callbacks, the arbiter's hooks): only the last
// owner takes the GIL, to delete it.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

namespace ufork::python {

template <class T>
std::shared_ptr<T> shared_with_gil(T* p) {
  return {p, [](T* q) {
            pybind11::gil_scoped_acquire gil;
            delete q;
          }};
}

}  // namespace ufork::python
