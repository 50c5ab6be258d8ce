#pragma once
// When the port mapper does what: find the router, map, renew before the lease runs out,
// and back off when the router cannot be found or refuses. No I/O and no clock of its
// own: the mapper reports each outcome and asks what is due, so tests drive time.
#include <chrono>
#include <optional>

namespace annexswarm::nat {

class MappingSchedule {
public:
  using Clock = std::chrono::steady_clock;
  enum class Step { Discover, Map, Renew };
  enum class State { Idle, Discovering, Mapping, Mapped, Renewing, WaitingToRetry };
  struct Settings {
    std::chrono::seconds lease{3600};  // asked of the router
    std::chrono::seconds first_retry{5};
    std::chrono::seconds max_retry{300};
  };

  explicit MappingSchedule(Settings settings) : settings_(settings) {}

  void start(Clock::time_point now);
  // The step due at `now`, if any; it is then in progress until its outcome is reported.
  std::optional<Step> take(Clock::time_point now);
  // When the next step falls due; nullopt while one is in progress (or before start).
  std::optional<Clock::time_point> deadline() const;

  void discovered(bool ok, Clock::time_point now);
  // `lease`: the shortest lease the router granted (0: permanent).
  void mapped(bool ok, std::chrono::seconds lease, Clock::time_point now);
  void renewed(bool ok, std::chrono::seconds lease, Clock::time_point now);

  State state() const { return state_; }
  bool is_mapped() const { return state_ == State::Mapped || state_ == State::Renewing; }
  // When the current mapping is renewed (valid while mapped).
  Clock::time_point renew_at() const { return due_; }

private:
  void retry_later(Clock::time_point now);
  void renew_later(std::chrono::seconds lease, Clock::time_point now);

  Settings settings_;
  State state_ = State::Idle;
  std::optional<Step> pending_;  // due at due_, not yet taken
  Clock::time_point due_{};
  std::chrono::seconds backoff_{0};
};

}  // namespace annexswarm::nat
