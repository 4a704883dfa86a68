// The test binaries' main: this process becomes a child subreaper, so a
// worker orphaned by a test (its arbiter SIGKILLed) is reparented here and
// can be reaped and checked, and every test ends with no child left.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

namespace {

class no_children_left : public testing::EmptyTestEventListener {
  void OnTestEnd(const testing::TestInfo&) override {
    // Anything still here was left by the test: fail, then clean up by pid.
    for (;;) {
      siginfo_t si{};
      if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return;  // ECHILD: none
      if (si.si_pid == 0) {
        ADD_FAILURE() << "a test left a running child process";
        // Its pid: the first entry of /proc/self/task/*/children.
        FILE* f = std::fopen(("/proc/self/task/" + std::to_string(getpid()) + "/children").c_str(), "r");
        int pid = 0;
        if (f && std::fscanf(f, "%d", &pid) == 1) kill(pid, SIGKILL);
        if (f) std::fclose(f);
        (void)waitpid(pid > 0 ? pid : -1, nullptr, 0);
      } else {
        (void)waitpid(si.si_pid, nullptr, 0);
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
  rlimit no_core{0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core);  // hung workers die of SIGABRT
  testing::UnitTest::GetInstance()->listeners().Append(new no_children_left);
  return RUN_ALL_TESTS();
}
