#pragma once
// Keeps the node's ports mapped on the home router. The schedule decides what is due;
// the backend calls run on the mapper's own worker thread and their outcomes are posted
// back to the io_context, which owns all state here. Nothing blocks the io thread.
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nat/mapping_schedule.hpp"
#include "nat/port_mapping.hpp"

namespace annexswarm::nat {

struct NatStatus {
  NatMethod configured = NatMethod::Auto;
  NatMethod in_use = NatMethod::None;  // the backend that found the router
  std::string state = "off";           // off, discovering, mapping, mapped, renewing, waiting, stopped
  std::string gateway;                 // how the router was found
  std::string external_address;
  std::vector<PortMapping> mappings;
  MappingSchedule::Clock::time_point renew_at{};
  MappingSchedule::Clock::time_point expires_at{};  // soonest lease end; epoch when permanent
  std::string error;  // the last failure, for every method tried
  bool settled = false;  // a first attempt has ended, mapped or not
};

class PortMapper {
public:
  struct Port {
    MappedProtocol protocol;
    std::uint16_t port;
  };
  struct Settings {
    NatMethod method = NatMethod::Auto;
    std::chrono::seconds lease{3600};
    std::vector<Port> ports;  // the first one matters most (the peer port)
    std::chrono::milliseconds discover_timeout{2000};
    std::chrono::milliseconds reply_timeout{3000};
  };
  // Makes the backend for a method; tests pass their own to inject faults.
  using BackendFactory = std::function<std::unique_ptr<MappingBackend>(NatMethod, const Settings&)>;

  PortMapper(asio::io_context& io, Settings settings, BackendFactory factory = {});
  ~PortMapper();  // joins the worker
  PortMapper(const PortMapper&) = delete;
  PortMapper& operator=(const PortMapper&) = delete;

  // Called on the io thread whenever the external address or the mapped ports change.
  void on_change(std::function<void(const NatStatus&)> fn) { on_change_ = std::move(fn); }
  // One line for the log; `warning` for what the user may want to act on.
  void on_log(std::function<void(bool warning, const std::string&)> fn) { on_log_ = std::move(fn); }

  void start();
  // Removes the mappings from the router, then calls `done` on the io thread.
  void stop(std::function<void()> done);
  const NatStatus& status() const { return status_; }

private:
  struct Outcome {
    bool ok = false;
    NatMethod method = NatMethod::None;
    std::string gateway;
    std::string external_address;
    std::vector<PortMapping> mappings;
    std::string error;
    std::vector<std::string> notes;  // things the user should hear about (lost mappings)
  };
  void pulse();
  void arm_timer();
  void run_step(MappingSchedule::Step step);
  void apply(MappingSchedule::Step step, Outcome outcome);
  // Worker side.
  Outcome work_discover();
  Outcome work_map(std::vector<PortMapping> previous);
  Outcome work_renew(std::vector<PortMapping> current);
  void log(bool warning, const std::string& line);

  asio::io_context& io_;
  Settings settings_;
  BackendFactory factory_;
  MappingSchedule schedule_;
  NatStatus status_;
  asio::steady_timer timer_;
  bool busy_ = false;
  bool stopping_ = false;
  std::function<void(const NatStatus&)> on_change_;
  std::function<void(bool, const std::string&)> on_log_;
  std::unique_ptr<MappingBackend> backend_;  // touched only on the worker
  asio::thread_pool worker_{1};
};

}  // namespace annexswarm::nat
