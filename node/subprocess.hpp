#pragma once
#include <string>
#include <vector>

namespace annexswarm {

struct ProcessOutput {
  int exit_code = -1;  // -1: could not start
  std::string out;
  std::string err;
};

// Runs argv[0] from PATH without a shell and collects its output.
ProcessOutput run_process(const std::vector<std::string>& argv);

// Starts argv[0] in the background, stdout and stderr appended to `log`, stdin from
// /dev/null. Returns its pid, or -1 when it cannot start.
int spawn_process(const std::vector<std::string>& argv, const std::string& log);

}  // namespace annexswarm
