// The NAT-PMP backend (RFC 6886), over libnatpmp: UDP requests to the default gateway,
// which answers with its epoch (seconds since it started). An epoch that went back
// means the gateway restarted and lost every mapping.
#define ENABLE_STRNATPMPERR 1
#include <arpa/inet.h>
#include <natpmp.h>
#include <sys/select.h>

#include <functional>
#include <string>

#include "nat/port_mapping.hpp"

namespace annexswarm::nat {
namespace {

using Clock = std::chrono::steady_clock;

class NatPmp final : public MappingBackend {
public:
  explicit NatPmp(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  ~NatPmp() override { close(); }

  NatMethod method() const override { return NatMethod::NatPmp; }

  Result<std::string> discover() override {
    close();
    int r = initnatpmp(&pmp_, 0, 0);
    if (r < 0) return Error{"cannot use NAT-PMP: " + text(r)};
    open_ = true;
    in_addr gw{};
    gw.s_addr = pmp_.gateway;
    gateway_ = inet_ntoa(gw);
    auto answer = exchange([this] { return sendpublicaddressrequest(&pmp_); });
    if (!answer) {
      close();
      return Error{answer.error()};
    }
    return "gateway " + gateway_;
  }

  Result<std::string> external_address() override {
    auto answer = exchange([this] { return sendpublicaddressrequest(&pmp_); });
    if (!answer) return Error{answer.error()};
    return std::string(inet_ntoa(answer->pnu.publicaddress.addr));
  }

  Result<PortMapping> map(MappedProtocol protocol, std::uint16_t internal_port, std::uint16_t wanted,
                          std::chrono::seconds lease) override {
    // The gateway picks another external port itself when the wanted one is taken.
    auto answer = exchange([&] {
      return sendnewportmappingrequest(&pmp_, protocol == MappedProtocol::Tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP,
                                       internal_port, wanted ? wanted : internal_port,
                                       static_cast<std::uint32_t>(lease.count() ? lease.count() : 7200));
    });
    if (!answer) return Error{answer.error()};
    const auto& m = answer->pnu.newportmapping;
    return PortMapping{protocol, internal_port, m.mappedpublicport, std::chrono::seconds(m.lifetime)};
  }

  std::optional<bool> still_mapped(const PortMapping&) override {
    auto before = epoch_;
    auto before_at = epoch_at_;
    if (!have_epoch_) return std::nullopt;
    auto answer = exchange([this] { return sendpublicaddressrequest(&pmp_); });
    if (!answer) return std::nullopt;
    // RFC 6886 3.6: allow the gateway's clock to run 1/8 slow, and 2 s of slack.
    auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(epoch_at_ - before_at).count();
    return static_cast<std::int64_t>(answer->epoch) + 2 >= static_cast<std::int64_t>(before) + elapsed * 7 / 8;
  }

  Result<bool> unmap(const PortMapping& m) override {
    auto answer = exchange([&] {
      return sendnewportmappingrequest(
          &pmp_, m.protocol == MappedProtocol::Tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP, m.internal_port, 0, 0);
    });
    if (!answer) return Error{answer.error()};
    return true;
  }

private:
  static std::string text(int code) {
    const char* t = strnatpmperr(code);
    return t ? std::string(t) : "error " + std::to_string(code);
  }

  void close() {
    if (open_) closenatpmp(&pmp_);
    open_ = false;
    have_epoch_ = false;
  }

  // Sends one request and waits for its answer, resending as libnatpmp schedules, but
  // never longer than our own timeout (libnatpmp alone would keep trying for minutes).
  Result<natpmpresp_t> exchange(const std::function<int()>& send) {
    if (!open_) return Error{"no NAT-PMP gateway"};
    int r = send();
    if (r < 0) return Error{"NAT-PMP request to " + gateway_ + ": " + text(r)};
    auto deadline = Clock::now() + timeout_;
    natpmpresp_t response{};
    for (;;) {
      timeval wait{};
      getnatpmprequesttimeout(&pmp_, &wait);
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
      if (left <= 0)
        return Error{"no NAT-PMP answer from " + gateway_ + " within " + std::to_string(timeout_.count()) + " ms"};
      std::int64_t want = std::int64_t(wait.tv_sec) * 1000000 + wait.tv_usec;
      if (want > left || want < 0) want = left;
      wait.tv_sec = static_cast<time_t>(want / 1000000);
      wait.tv_usec = static_cast<suseconds_t>(want % 1000000);
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(pmp_.s, &fds);
      select(pmp_.s + 1, &fds, nullptr, nullptr, &wait);
      r = readnatpmpresponseorretry(&pmp_, &response);
      if (r == NATPMP_TRYAGAIN) continue;
      if (r < 0) return Error{"NAT-PMP gateway " + gateway_ + ": " + text(r)};
      epoch_ = response.epoch;
      epoch_at_ = Clock::now();
      have_epoch_ = true;
      return response;
    }
  }

  std::chrono::milliseconds timeout_;
  natpmp_t pmp_{};
  bool open_ = false;
  std::string gateway_;
  std::uint32_t epoch_ = 0;
  Clock::time_point epoch_at_{};
  bool have_epoch_ = false;
};

}  // namespace

std::unique_ptr<MappingBackend> make_natpmp_backend(std::chrono::milliseconds reply_timeout) {
  return std::make_unique<NatPmp>(reply_timeout);
}

}  // namespace annexswarm::nat
