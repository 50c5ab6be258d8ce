#include "discovery/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace annexswarm {

Result<ControlClient> ControlClient::connect(const std::filesystem::path& state_dir) {
  auto path = (state_dir / "control.sock").string();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Error{"control socket path " + path + " is too long"};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{std::string("cannot create a socket: ") + std::strerror(errno)};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      return Error{"no annex-swarm daemon is running with state dir " + state_dir.string() +
                   " (start one with 'annex-swarm daemon')"};
    if (err == EACCES)
      return Error{"permission denied on " + path + " (run as the daemon's user)"};
    return Error{"cannot reach the daemon at " + path + ": " + std::strerror(err)};
  }
  ControlClient client(fd);
  // A test, or a very slow machine, may want another patience than the default.
  if (const char* t = std::getenv("ANNEX_SWARM_CONTROL_TIMEOUT"); t && *t) {
    auto seconds = std::strtol(t, nullptr, 10);
    if (seconds > 0) client.set_timeout(std::chrono::seconds(seconds));
  }
  return client;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

ControlClient::ControlClient(ControlClient&& other) noexcept
    : fd_(other.fd_), buffer_(std::move(other.buffer_)), timeout_(other.timeout_) {
  other.fd_ = -1;
}

Result<std::string> ControlClient::read_line() {
  while (true) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    // A node at work says so every few seconds; one silent for much longer is stuck.
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0)
      return Error{"the daemon did not answer for " + std::to_string(timeout_.count() / 1000) +
                   " s (is it stuck? see its log)"};
    char buf[16384];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{"the daemon closed the connection (did it stop?)"};
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

Result<nlohmann::json> ControlClient::request(const nlohmann::json& request, const EventFn& on_event) {
  std::string line = request.dump() + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{std::string("cannot send to the daemon: ") + std::strerror(errno)};
    done += static_cast<std::size_t>(n);
  }
  while (true) {
    auto reply = read_line();
    if (!reply) return Error{reply.error()};
    auto message = nlohmann::json::parse(*reply, nullptr, false);
    if (message.is_discarded() || !message.is_object())
      return Error{"the daemon sent a malformed reply"};
    if (message.contains("event")) {
      if (on_event && message.value("event", "") != "alive") on_event(message);
      continue;
    }
    return message;
  }
}

}  // namespace annexswarm
