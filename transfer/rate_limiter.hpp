#pragma once
// A token bucket for pacing uploads. Pure: the caller passes the time. Sending may run
// into debt; the debt is paid back by waiting, so large frames are paced, never starved.
#include <algorithm>
#include <chrono>

namespace annexswarm {

class RateLimiter {
public:
  using Clock = std::chrono::steady_clock;
  // bytes_per_second == 0: unlimited. burst: bytes that may go out at once after idling.
  explicit RateLimiter(double bytes_per_second = 0, double burst = 256 * 1024)
      : rate_(bytes_per_second), burst_(burst), tokens_(burst) {}

  bool limited() const { return rate_ > 0; }

  // Takes `bytes` now; returns how long to wait before sending them.
  Clock::duration take(std::size_t bytes, Clock::time_point now) {
    if (rate_ <= 0) return Clock::duration::zero();
    if (last_ != Clock::time_point{})
      tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
    last_ = now;
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ >= 0) return Clock::duration::zero();
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
  }

private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_{};
};

}  // namespace annexswarm
