#pragma once
// An in-memory DHT for service tests: puts are kept as signed values of this node (or
// of whoever the test says), gets answer from what is stored, at once or when the test
// says (hold_gets), and values can be planted raw, as a hostile node would.
#include <deque>
#include <map>

#include "node/dht_client.hpp"

namespace annexswarm::test {

class FakeDht final : public DhtClient {
public:
  explicit FakeDht(NodeId self) : self_(self) {}

  void put(const DhtLocation& location, std::uint64_t value_id, std::uint16_t seq, Bytes data,
           std::function<void(bool)> done) override {
    ++puts;
    if (fail_puts) return done(false);
    // As OpenDHT's storage nodes do with a signed value: another owner's id is not ours
    // to take, and our own is replaced only by a higher sequence number (or the same
    // bytes again).
    for (const auto& v : values_at(location))
      if (v.id == value_id && (v.owner != self_ || seq < v.seq || (seq == v.seq && v.data != data))) {
        ++refused_puts;
        return done(false);
      }
    plant(location, {true, self_, value_id, seq, std::move(data)});
    done(true);
  }
  void get(const DhtLocation& location, std::chrono::milliseconds, std::function<void(std::vector<DhtValue>)> done,
           End = End::Complete) override {
    ++gets;
    if (hold_gets) {
      held.push_back([this, location, done] { done(values_at(location)); });
      return;
    }
    done(values_at(location));
  }
  bool connected() const override { return is_connected; }

  // A value as the DHT would hand it over; replaces one with the same owner and id.
  void plant(const DhtLocation& location, DhtValue value) {
    auto& list = store_[location.hex()];
    std::erase_if(list, [&](const DhtValue& v) { return v.owner == value.owner && v.id == value.id && value.is_signed; });
    list.push_back(std::move(value));
  }
  std::vector<DhtValue> values_at(const DhtLocation& location) const {
    auto it = store_.find(location.hex());
    return it == store_.end() ? std::vector<DhtValue>{} : it->second;
  }
  // A location whose values never reached the nodes a get asks (a put made while the
  // DHT was still forming).
  void forget(const DhtLocation& location) { store_.erase(location.hex()); }
  // Answers the held gets, in order.
  void release_gets() {
    auto pending = std::move(held);
    held.clear();
    for (auto& fn : pending) fn();
  }

  bool is_connected = true;
  bool fail_puts = false;
  bool hold_gets = false;
  std::size_t puts = 0, gets = 0, refused_puts = 0;
  std::deque<std::function<void()>> held;

private:
  NodeId self_;
  std::map<std::string, std::vector<DhtValue>> store_;
};

}  // namespace annexswarm::test
