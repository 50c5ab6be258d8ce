#pragma once
// Ask several sources at once, take all the answers together: once every source has
// answered, or at the deadline with whatever came (the rest empty). An answer after
// that, or a second answer from one source, is dropped. `done` runs exactly once.
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "node/timers.hpp"

namespace annexswarm {

template <class T>
using Answer = std::function<void(T)>;

template <class T>
void gather(Timers& timers, std::size_t count, Timers::Clock::duration deadline,
            const std::function<void(std::size_t index, Answer<T> answer)>& ask,
            std::function<void(std::vector<std::optional<T>>)> done) {
  struct State {
    std::vector<std::optional<T>> answers;
    std::size_t pending = 0;
    std::function<void(std::vector<std::optional<T>>)> done;
    std::unique_ptr<Timer> timer;
    void finish() {
      if (!done) return;
      auto cb = std::move(done);
      done = nullptr;
      timer.reset();
      cb(std::move(answers));
    }
  };
  if (count == 0) return done({});
  auto state = std::make_shared<State>();
  state->answers.resize(count);
  state->pending = count;
  state->done = std::move(done);
  state->timer = timers.make_timer();
  // The timer keeps the state alive until the deadline even when every asker has lost
  // its callback; finish() drops the timer, which breaks that cycle.
  state->timer->schedule(deadline, [state] { state->finish(); });
  for (std::size_t i = 0; i < count; ++i) {
    ask(i, [state, i](T value) {
      if (!state->done || state->answers[i]) return;
      state->answers[i] = std::move(value);
      if (--state->pending == 0) state->finish();
    });
  }
}

}  // namespace annexswarm
