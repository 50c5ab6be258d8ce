#include "nat/port_mapper.hpp"

#include <asio/post.hpp>

#include <algorithm>

namespace annexswarm::nat {
namespace {

using Clock = MappingSchedule::Clock;

std::string_view state_name(MappingSchedule::State s) {
  switch (s) {
    case MappingSchedule::State::Idle: return "off";
    case MappingSchedule::State::Discovering: return "discovering";
    case MappingSchedule::State::Mapping: return "mapping";
    case MappingSchedule::State::Mapped: return "mapped";
    case MappingSchedule::State::Renewing: return "renewing";
    case MappingSchedule::State::WaitingToRetry: return "waiting";
  }
  return "off";
}

std::string describe(const PortMapping& m) {
  return std::string(to_string(m.protocol)) + " " + std::to_string(m.external_port) + " -> " +
         std::to_string(m.internal_port);
}

}  // namespace

std::string_view to_string(NatMethod method) {
  switch (method) {
    case NatMethod::Auto: return "auto";
    case NatMethod::Upnp: return "upnp";
    case NatMethod::NatPmp: return "natpmp";
    case NatMethod::None: return "none";
  }
  return "none";
}

std::optional<NatMethod> nat_method_from_string(std::string_view text) {
  for (auto m : {NatMethod::Auto, NatMethod::Upnp, NatMethod::NatPmp, NatMethod::None})
    if (text == to_string(m)) return m;
  return std::nullopt;
}

std::string_view to_string(MappedProtocol protocol) { return protocol == MappedProtocol::Tcp ? "tcp" : "udp"; }

PortMapper::PortMapper(asio::io_context& io, Settings settings, BackendFactory factory)
    : io_(io),
      settings_(std::move(settings)),
      factory_(std::move(factory)),
      schedule_({settings_.lease, std::chrono::seconds(5), std::chrono::seconds(300)}),
      timer_(io) {
  if (!factory_) {
    factory_ = [](NatMethod m, const Settings& s) -> std::unique_ptr<MappingBackend> {
      if (m == NatMethod::Upnp) return make_upnp_backend(s.discover_timeout);
      if (m == NatMethod::NatPmp) return make_natpmp_backend(s.reply_timeout);
      return nullptr;
    };
  }
  status_.configured = settings_.method;
}

PortMapper::~PortMapper() {
  timer_.cancel();
  worker_.join();
}

void PortMapper::log(bool warning, const std::string& line) {
  if (on_log_) on_log_(warning, line);
}

void PortMapper::start() {
  if (settings_.method == NatMethod::None || settings_.ports.empty()) return;
  schedule_.start(Clock::now());
  pulse();
}

void PortMapper::pulse() {
  if (stopping_ || busy_) return;
  auto step = schedule_.take(Clock::now());
  status_.state = std::string(state_name(schedule_.state()));
  if (step) return run_step(*step);
  arm_timer();
}

void PortMapper::arm_timer() {
  auto when = schedule_.deadline();
  if (!when) return;
  timer_.expires_at(*when);
  timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) pulse();
  });
}

void PortMapper::run_step(MappingSchedule::Step step) {
  busy_ = true;
  auto mappings = status_.mappings;
  asio::post(worker_, [this, step, mappings] {
    Outcome outcome = step == MappingSchedule::Step::Discover ? work_discover()
                      : step == MappingSchedule::Step::Map    ? work_map(mappings)
                                                              : work_renew(mappings);
    asio::post(io_, [this, step, outcome = std::move(outcome)]() mutable { apply(step, std::move(outcome)); });
  });
}

void PortMapper::apply(MappingSchedule::Step step, Outcome outcome) {
  busy_ = false;
  auto now = Clock::now();
  for (const auto& note : outcome.notes) log(true, note);
  auto before_address = status_.external_address;
  auto before_mappings = status_.mappings;
  auto before_error = status_.error;
  switch (step) {
    case MappingSchedule::Step::Discover:
      if (outcome.ok) {
        status_.in_use = outcome.method;
        status_.gateway = outcome.gateway;
        status_.external_address = outcome.external_address;
        status_.error.clear();
        log(false, "port mapping: " + std::string(to_string(outcome.method)) + " router found, " + outcome.gateway +
                       ", external address " + outcome.external_address);
      } else {
        if (status_.error != outcome.error || status_.in_use != NatMethod::None)
          log(true, "port mapping unavailable: " + outcome.error);
        status_.in_use = NatMethod::None;
        status_.gateway.clear();
        status_.external_address.clear();
        status_.mappings.clear();
        status_.error = outcome.error;
      }
      schedule_.discovered(outcome.ok, now);
      break;
    case MappingSchedule::Step::Map:
    case MappingSchedule::Step::Renew: {
      if (outcome.ok) {
        status_.mappings = outcome.mappings;
        if (!outcome.external_address.empty()) status_.external_address = outcome.external_address;
        status_.error.clear();
      } else {
        status_.mappings.clear();
        status_.error = outcome.error;
        log(true, "port mapping failed: " + outcome.error);
      }
      std::chrono::seconds lease{0};
      for (const auto& m : status_.mappings)
        if (m.lease.count() > 0 && (lease.count() == 0 || m.lease < lease)) lease = m.lease;
      if (step == MappingSchedule::Step::Map) schedule_.mapped(outcome.ok, lease, now);
      else schedule_.renewed(outcome.ok, lease, now);
      if (outcome.ok) {
        status_.renew_at = schedule_.renew_at();
        status_.expires_at = lease.count() > 0 ? now + lease : Clock::time_point{};
      }
      if (outcome.ok && status_.mappings != before_mappings) {
        std::string list;
        for (const auto& m : status_.mappings) list += (list.empty() ? "" : ", ") + describe(m);
        log(false, "port mapping: " + list + " on " + status_.external_address + " (lease " +
                       (lease.count() ? std::to_string(lease.count()) + " s" : std::string("permanent")) + ")");
      }
      break;
    }
  }
  if (before_address != status_.external_address && !before_address.empty() && !status_.external_address.empty())
    log(true, "the router's external address changed from " + before_address + " to " + status_.external_address);
  if (step != MappingSchedule::Step::Discover || !outcome.ok) status_.settled = true;
  status_.state = std::string(state_name(schedule_.state()));
  if ((before_address != status_.external_address || before_mappings != status_.mappings ||
       before_error != status_.error) && on_change_)
    on_change_(status_);
  pulse();
}

PortMapper::Outcome PortMapper::work_discover() {
  Outcome out;
  std::vector<NatMethod> order;
  if (settings_.method == NatMethod::Auto) order = {NatMethod::Upnp, NatMethod::NatPmp};
  else order = {settings_.method};
  backend_.reset();
  for (auto method : order) {
    auto backend = factory_(method, settings_);
    if (!backend) continue;
    auto found = backend->discover();
    if (!found) {
      out.error += (out.error.empty() ? "" : "; ") + std::string(method == NatMethod::Upnp ? "UPnP: " : "NAT-PMP: ") +
                   found.error();
      continue;
    }
    auto address = backend->external_address();
    if (!address) {
      out.error += (out.error.empty() ? "" : "; ") + std::string(to_string(method)) + ": " + address.error();
      continue;
    }
    out.ok = true;
    out.method = method;
    out.gateway = *found;
    out.external_address = *address;
    backend_ = std::move(backend);
    return out;
  }
  return out;
}

PortMapper::Outcome PortMapper::work_map(std::vector<PortMapping> previous) {
  Outcome out;
  if (!backend_) {
    out.error = "no router";
    return out;
  }
  for (const auto& port : settings_.ports) {
    std::uint16_t wanted = port.port;
    for (const auto& p : previous)
      if (p.protocol == port.protocol && p.internal_port == port.port) wanted = p.external_port;
    auto mapped = backend_->map(port.protocol, port.port, wanted, settings_.lease);
    if (mapped) out.mappings.push_back(*mapped);
    else out.error += (out.error.empty() ? "" : "; ") + mapped.error();
  }
  // The peer port is what matters; a failed DHT port mapping is reported, not fatal.
  out.ok = !out.mappings.empty() && out.mappings.front().internal_port == settings_.ports.front().port &&
           out.mappings.front().protocol == settings_.ports.front().protocol;
  if (out.ok && !out.error.empty()) out.notes.push_back("port mapping incomplete: " + out.error);
  if (out.ok) {
    if (auto address = backend_->external_address()) out.external_address = *address;
  }
  return out;
}

PortMapper::Outcome PortMapper::work_renew(std::vector<PortMapping> current) {
  if (!backend_) return Outcome{false, NatMethod::None, {}, {}, {}, "no router", {}};
  std::vector<std::string> notes;
  for (const auto& m : current) {
    if (backend_->still_mapped(m) == false)
      notes.push_back("the router lost the mapping " + describe(m) + " (it restarted?); mapping again");
  }
  auto out = work_map(std::move(current));
  out.notes.insert(out.notes.begin(), notes.begin(), notes.end());
  return out;
}

void PortMapper::stop(std::function<void()> done) {
  stopping_ = true;
  timer_.cancel();
  auto mappings = status_.mappings;
  status_.mappings.clear();
  status_.state = "stopped";
  asio::post(worker_, [this, mappings, done = std::move(done)] {
    std::vector<std::string> errors;
    if (backend_)
      for (const auto& m : mappings)
        if (auto r = backend_->unmap(m); !r) errors.push_back(r.error());
    asio::post(io_, [this, errors, count = mappings.size(), done] {
      for (const auto& e : errors) log(true, "could not remove a port mapping: " + e);
      if (count && errors.empty()) log(false, "port mappings removed from the router");
      done();
    });
  });
}

}  // namespace annexswarm::nat
