// Running C++ with the GIL released, in a way that survives interpreter
// shutdown.
//
// While a thread computes without the GIL, the interpreter may finalise (the
// main thread returned while a daemon thread was inside convx). CPython then
// ends that thread when it asks for the GIL back, with pthread_exit(), whose
// forced unwind runs the destructors of every frame above. A destructor is
// noexcept, so retaking the GIL in one (as py::gil_scoped_release does) turns
// that unwind into std::terminate. Here the GIL is retaken by a plain call,
// and the forced unwind passes through: every catch (...) on its way must
// rethrow it (see CONVX_RETHROW_FORCED_UNWIND).
#pragma once

#include <Python.h>

#include <exception>
#include <utility>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
// A catch clause for the forced unwind of a thread that CPython ends; it must
// be rethrown, never swallowed (libstdc++ aborts otherwise).
#define CONVX_RETHROW_FORCED_UNWIND \
  catch (abi::__forced_unwind&) {   \
    throw;                          \
  }
#else
#define CONVX_RETHROW_FORCED_UNWIND
#endif

namespace convx_bindings {

// Runs f() without the GIL and returns what it threw (null if nothing), with
// the GIL held again. A new Python object that the caller owns should be held
// as a raw reference across this call and wrapped only after it returns: if
// the thread is ended here, such a reference is leaked, never released
// without the GIL.
template <typename F>
[[nodiscard]] std::exception_ptr call_without_gil(F&& f) {
  std::exception_ptr error;
  PyThreadState* state = PyEval_SaveThread();
  try {
    std::forward<F>(f)();
  } catch (...) {
    error = std::current_exception();
  }
  PyEval_RestoreThread(state);
  return error;
}

// call_without_gil(f), rethrowing what f threw once the GIL is held again.
template <typename F>
void without_gil(F&& f) {
  if (std::exception_ptr error = call_without_gil(std::forward<F>(f))) {
    std::rethrow_exception(error);
  }
}

}  // namespace convx_bindings
