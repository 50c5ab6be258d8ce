#include "nat/mapping_schedule.hpp"

#include <algorithm>

namespace annexswarm::nat {

void MappingSchedule::start(Clock::time_point now) {
  state_ = State::Discovering;
  pending_ = Step::Discover;
  due_ = now;
  backoff_ = std::chrono::seconds(0);
}

std::optional<MappingSchedule::Step> MappingSchedule::take(Clock::time_point now) {
  if (!pending_ || now < due_) return std::nullopt;
  auto step = *pending_;
  pending_.reset();
  state_ = step == Step::Discover ? State::Discovering : step == Step::Map ? State::Mapping : State::Renewing;
  return step;
}

std::optional<MappingSchedule::Clock::time_point> MappingSchedule::deadline() const {
  if (!pending_) return std::nullopt;
  return due_;
}

void MappingSchedule::discovered(bool ok, Clock::time_point now) {
  if (!ok) return retry_later(now);
  state_ = State::Mapping;
  pending_ = Step::Map;
  due_ = now;
}

void MappingSchedule::mapped(bool ok, std::chrono::seconds lease, Clock::time_point now) {
  if (!ok) return retry_later(now);
  backoff_ = std::chrono::seconds(0);
  renew_later(lease, now);
}

void MappingSchedule::renewed(bool ok, std::chrono::seconds lease, Clock::time_point now) {
  if (ok) return renew_later(lease, now);
  // The router went away or forgot us: look for it again at once, then back off.
  state_ = State::Discovering;
  pending_ = Step::Discover;
  due_ = now;
}

void MappingSchedule::retry_later(Clock::time_point now) {
  backoff_ = backoff_.count() == 0 ? settings_.first_retry : std::min(backoff_ * 2, settings_.max_retry);
  state_ = State::WaitingToRetry;
  pending_ = Step::Discover;
  due_ = now + backoff_;
}

void MappingSchedule::renew_later(std::chrono::seconds lease, Clock::time_point now) {
  // Renew at half the lease, so one lost renewal still leaves time for another. A
  // permanent mapping is checked as often as the lease we asked for would be.
  auto period = lease.count() > 0 ? lease : settings_.lease;
  state_ = State::Mapped;
  pending_ = Step::Renew;
  due_ = now + std::max<std::chrono::seconds>(period / 2, std::chrono::seconds(1));
}

}  // namespace annexswarm::nat
