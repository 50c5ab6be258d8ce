#pragma once
// Time moved by hand, for service tests: timers fire only in advance(), posted work runs
// only in run_posted(), and nothing else moves.
#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <set>

#include "node/timers.hpp"

namespace annexswarm::test {

class ManualTimers final : public Timers {
public:
  Clock::time_point now() const override { return now_; }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(std::chrono::hours(500000)) + (now_ - Clock::time_point{});
  }
  // wall_now() as the Unix time a DHT record is stamped with.
  std::uint64_t unix_seconds() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(wall_now().time_since_epoch()).count());
  }

  std::unique_ptr<Timer> make_timer() override { return std::make_unique<ManualTimer>(*this); }
  void post(std::function<void()> fn) override { posted_.push_back(std::move(fn)); }

  // Runs everything posted so far (and what that posts).
  void run_posted() {
    while (!posted_.empty()) {
      auto fn = std::move(posted_.front());
      posted_.pop_front();
      fn();
    }
  }
  // Moves time forward, firing every timer that comes due on the way, in order.
  void advance(Clock::duration d) {
    auto end = now_ + d;
    run_posted();
    while (true) {
      ManualTimer* next = nullptr;
      for (auto* t : timers_)
        if (t->armed_ && t->due_ <= end && (!next || t->due_ < next->due_)) next = t;
      if (!next) break;
      now_ = std::max(now_, next->due_);
      next->armed_ = false;
      auto fn = std::move(next->fn_);
      fn();
      run_posted();
    }
    now_ = end;
  }
  std::size_t armed() const {
    return static_cast<std::size_t>(std::count_if(timers_.begin(), timers_.end(), [](auto* t) { return t->armed_; }));
  }

private:
  class ManualTimer final : public Timer {
  public:
    explicit ManualTimer(ManualTimers& owner) : owner_(owner) { owner_.timers_.insert(this); }
    ~ManualTimer() override { owner_.timers_.erase(this); }
    void schedule(Clock::duration delay, std::function<void()> fn) override {
      due_ = owner_.now_ + delay;
      fn_ = std::move(fn);
      armed_ = true;
    }
    void cancel() override {
      armed_ = false;
      fn_ = nullptr;
    }
    ManualTimers& owner_;
    Clock::time_point due_{};
    std::function<void()> fn_;
    bool armed_ = false;
  };
  Clock::time_point now_{std::chrono::hours(1000)};
  std::set<ManualTimer*> timers_;
  std::deque<std::function<void()>> posted_;
};

}  // namespace annexswarm::test
