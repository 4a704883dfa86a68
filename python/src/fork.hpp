// The interpreter's side of each fork a pool makes: CPython's fork protocol
// (PyOS_BeforeFork and the after-fork calls, which keep the import lock,
// threading's state and os.register_at_fork's callbacks right), and the
// collector frozen before each fork, so that a worker's collections never
// write to the headers of what the arbiter holds and those pages stay
// shared (after the first fork only what is new since is collected: the
// frozen are not looked at again). The pool's thread runs without the GIL:
// before_fork takes it, the parent gives it back, the child keeps it.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "gil.hpp"
#include "ufork/options.hpp"

namespace ufork::python {

class fork_protocol {
 public:
  explicit fork_protocol(bool gc_freeze) {
    if (gc_freeze) freeze_ = shared_with_gil(new pybind11::object(pybind11::module_::import("gc").attr("freeze")));
  }
  // Sets h's before_fork, after_fork_parent and after_fork_child; this must
  // outlive the pool.
  void add_to(hooks& h) {
    h.before_fork = [this] {
      gil_ = PyGILState_Ensure();
      if (freeze_) {
        PyGC_Collect();
        try {
          (*freeze_)();
        } catch (pybind11::error_already_set& e) {
          e.restore();
          PyErr_Print();
        }
      }
      PyOS_BeforeFork();
    };
    h.after_fork_parent = [this] {
      PyOS_AfterFork_Parent();
      PyGILState_Release(gil_);
    };
    h.after_fork_child = [] { PyOS_AfterFork_Child(); };  // this thread keeps the GIL
  }

 private:
  PyGILState_STATE gil_{};
  std::shared_ptr<pybind11::object> freeze_;
};

}  // namespace ufork::python
