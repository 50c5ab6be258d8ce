#include "node/log.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace annexswarm::log {
namespace {
std::atomic<Level> g_level{Level::Info};
std::mutex g_write_mutex;

const char* level_name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

bool parse_level(std::string_view text, Level& out) {
  for (auto l : {Level::Debug, Level::Info, Level::Warn, Level::Error})
    if (text == level_name(l)) {
      out = l;
      return true;
    }
  return false;
}

void write(Level l, std::string_view message) {
  // OpenDHT logs from its own thread; one lock keeps lines whole.
  std::lock_guard lock(g_write_mutex);
  std::fprintf(stderr, "%s: %.*s\n", level_name(l), static_cast<int>(message.size()),
               message.data());
}

bool RateLimited::allow(std::chrono::steady_clock::time_point now, std::uint64_t& suppressed) {
  if (!logged_once_ || now - last_ >= interval_) {
    logged_once_ = true;
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

}  // namespace annexswarm::log
