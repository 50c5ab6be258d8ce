#include "node/timers.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

namespace annexswarm {
namespace {

class AsioTimer final : public Timer {
public:
  explicit AsioTimer(asio::io_context& io) : timer_(io) {}
  void schedule(std::chrono::steady_clock::duration delay, std::function<void()> fn) override {
    // A replaced or cancelled wait ends with operation_aborted; the generation check
    // also covers a wait that had already completed but not yet run its handler.
    auto generation = ++generation_;
    timer_.expires_after(delay);
    timer_.async_wait([generation, current = std::weak_ptr<std::uint64_t>(current_), fn = std::move(fn)](
                          const std::error_code& ec) {
      auto alive = current.lock();
      if (!ec && alive && *alive == generation) fn();
    });
    *current_ = generation;
  }
  void cancel() override {
    ++generation_;
    *current_ = 0;
    timer_.cancel();
  }

private:
  asio::steady_timer timer_;
  std::uint64_t generation_ = 0;
  std::shared_ptr<std::uint64_t> current_ = std::make_shared<std::uint64_t>(0);
};

class AsioTimers final : public Timers {
public:
  explicit AsioTimers(asio::io_context& io) : io_(io) {}
  Clock::time_point now() const override { return Clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override { return std::chrono::system_clock::now(); }
  std::unique_ptr<Timer> make_timer() override { return std::make_unique<AsioTimer>(io_); }
  void post(std::function<void()> fn) override { asio::post(io_, std::move(fn)); }

private:
  asio::io_context& io_;
};

}  // namespace

std::unique_ptr<Timers> make_asio_timers(asio::io_context& io) { return std::make_unique<AsioTimers>(io); }

}  // namespace annexswarm
