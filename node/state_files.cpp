#include "node/state_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace annexswarm {
namespace fs = std::filesystem;

std::string read_permission_problem(const fs::path& path) {
  auto absolute = fs::absolute(path);
  fs::path walked;
  for (const auto& part : absolute) {
    walked /= part;
    bool last = walked == absolute;
    struct stat st{};
    if (::stat(walked.c_str(), &st) != 0) return {};  // missing: another error says so
    int want = S_ISDIR(st.st_mode) ? (last ? R_OK | X_OK : X_OK) : R_OK;
    if (::access(walked.c_str(), want) == 0) continue;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return "uid " + std::to_string(::geteuid()) + " may not " + (S_ISDIR(st.st_mode) && !last ? "enter " : "read ") +
           walked.string() + " (owner uid " + std::to_string(st.st_uid) + ", group " + std::to_string(st.st_gid) +
           ", mode " + mode + ")";
  }
  return {};
}

Result<std::string> read_file(const fs::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) return Error{"cannot read " + path.string() + ": " + read_permission_problem(path)};
  if (fd < 0) return Error{"cannot read " + path.string() + ": " + std::strerror(errno)};
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Error{"cannot read " + path.string() + ": " + std::strerror(err)};
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return out;
}

Result<bool> write_file_atomic(const fs::path& path, const std::string& content, unsigned mode) {
  auto tmp = path;
  tmp += ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{"cannot write " + tmp.string() + ": " + std::strerror(errno)};
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return Error{"cannot write " + tmp.string() + ": " + std::strerror(err)};
    }
    done += static_cast<std::size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp.c_str());
    return Error{"cannot write " + tmp.string() + ": " + std::strerror(errno)};
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Error{"cannot replace " + path.string() + ": " + std::strerror(err)};
  }
  return true;
}

Result<bool> prepare_state_dir(const fs::path& dir) {
  std::error_code ec;
  bool created = fs::create_directories(dir, ec);
  if (ec) return Error{"cannot create state dir " + dir.string() + ": " + ec.message()};
  if (!fs::is_directory(dir, ec))
    return Error{"state dir " + dir.string() + " is not a directory"};
  if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    struct stat st{};
    ::stat(dir.c_str(), &st);
    return Error{"state dir " + dir.string() + " is not writable by uid " + std::to_string(::geteuid()) +
                 " (owner uid " + std::to_string(st.st_uid) + "): " + std::strerror(errno)};
  }
  // Only a directory we made is narrowed: it will hold the node's private key.
  if (created) chmod(dir.c_str(), 0700);
  return true;
}

}  // namespace annexswarm
