#pragma once
// Time as the node's services see it: now(), one-shot timers, and "run this soon on the
// owner's thread". AsioTimers runs everything on the node's io_context; service tests
// use ManualTimers (tests/support/manual_timers.hpp) and move time by hand.
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace annexswarm {

class Timer {
public:
  virtual ~Timer() = default;  // a destroyed timer never fires
  // Runs `fn` after `delay`, replacing whatever was scheduled; never inline.
  virtual void schedule(std::chrono::steady_clock::duration delay, std::function<void()> fn) = 0;
  virtual void cancel() = 0;
};

class Timers {
public:
  using Clock = std::chrono::steady_clock;
  virtual ~Timers() = default;
  virtual Clock::time_point now() const = 0;
  // Wall-clock time, for what outlives the process (announce state on disk).
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  virtual std::unique_ptr<Timer> make_timer() = 0;
  // Runs `fn` on the owner's thread soon, never inline.
  virtual void post(std::function<void()> fn) = 0;
};

std::unique_ptr<Timers> make_asio_timers(asio::io_context& io);

}  // namespace annexswarm
