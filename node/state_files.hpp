#pragma once
// Files in the state directory are replaced atomically (write, fsync, rename), so a
// crash leaves the old or the new version, never half of one.
#include <filesystem>
#include <string>

#include "protocol/result.hpp"

namespace annexswarm {

Result<std::string> read_file(const std::filesystem::path& path);
// Why this process may not read `path`, for an error message: empty when it may, else
// "uid U may not read it (owner uid O, mode 0MMM)" naming the first of path or its
// parents that stops it (a container's user is often not the files' owner).
std::string read_permission_problem(const std::filesystem::path& path);
Result<bool> write_file_atomic(const std::filesystem::path& path, const std::string& content,
                               unsigned mode);
// Creates the directory (mode 0700) if needed and checks that it is writable.
Result<bool> prepare_state_dir(const std::filesystem::path& dir);

}  // namespace annexswarm
