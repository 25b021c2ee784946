// main() of tessera_core_tests: runs the test registered under argv[1] (its file's name, e.g.
// test_safetensors; tests/support/tessera_test.h), passing it the remaining arguments, e.g. the test
// functions to run. CTest runs one registered test per entry (tests/CMakeLists.txt).
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "tessera_test.h"

namespace {

// A crash names itself: the stack (symbols from -rdynamic) on stderr, then the default action.
void print_stack_and_die(int sig) {
  const char header[] = "\n*** tessera_core_tests: fatal signal, stack:\n";
  (void)!::write(STDERR_FILENO, header, sizeof(header) - 1);
  void* frames[64];
  ::backtrace_symbols_fd(frames, ::backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered, so that the last test function reported before a crash is in the log.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, print_stack_and_die);
#ifdef TESSERA_TEST_WITH_QT
  QCoreApplication app(argc, argv);
#endif
  const auto& tests = tessera_test::registered_tests();
  const auto found = argc >= 2 ? tests.find(argv[1]) : tests.end();
  if (found == tests.end()) {
    std::fprintf(stderr, "usage: %s TEST [test functions and QTest options]\ntests:", argv[0]);
    for (const auto& [name, entry] : tests) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  std::vector<char*> args{argv[0]};
  args.insert(args.end(), argv + 2, argv + argc);
  return found->second(static_cast<int>(args.size()), args.data());
}
