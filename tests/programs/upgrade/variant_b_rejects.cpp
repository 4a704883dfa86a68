// A new build that will not read the state it is handed, as one that reads
// another format would: it is handed, in place of the old image's state, a
// state in a format it does not read (format 1). The way back gives the old
// image its own state, as the process started with it: the old image must
// come back. No seam in the library: the state's fd is the environment's.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

const char* build_id() { return "B"; }
void before_serving() {
  if (!std::getenv("UFORK_UPGRADE_STATE")) return;
  int fd = ::memfd_create("ufork-upgrade-other-format", MFD_CLOEXEC);
  const std::string text = "ufork-upgrade 1\nend\n";
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::abort();
  ::setenv("UFORK_UPGRADE_STATE", std::to_string(fd).c_str(), 1);
}
void before_run() {}
