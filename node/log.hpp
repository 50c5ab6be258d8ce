#pragma once
// Plain log lines with a level on stderr (journald keeps them as they are).
#include <fmt/format.h>

#include <chrono>
#include <string_view>

namespace annexswarm::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level& out);
void write(Level level, std::string_view message);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::Debug) write(Level::Debug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::Info) write(Level::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::Warn) write(Level::Warn, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::Error, fmt::format(f, std::forward<Args>(args)...));
}

// Logs untrusted-input events at most once per interval per category; the rest are
// only counted, so a hostile peer cannot flood the log.
class RateLimited {
public:
  explicit RateLimited(std::chrono::seconds interval = std::chrono::seconds(60))
      : interval_(interval) {}
  // True when this occurrence should be logged; `suppressed` is how many were not.
  bool allow(std::chrono::steady_clock::time_point now, std::uint64_t& suppressed);

private:
  std::chrono::seconds interval_;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
  bool logged_once_ = false;
};

}  // namespace annexswarm::log
