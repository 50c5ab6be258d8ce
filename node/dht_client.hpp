#pragma once
// What the node's services need of the DHT: put a signed value, get the values at a
// location, and whether we have peers. DhtNode is the real one (OpenDHT); service tests
// use an in-memory fake.
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

// Value type of every annex-swarm record: annex-swarm nodes keep such values 60 minutes
// (other OpenDHT nodes keep unknown types 10 minutes).
inline constexpr std::uint16_t kRecordValueType = 0x4153;
inline constexpr auto kRecordLifetime = std::chrono::minutes(60);

struct DhtValue {
  bool is_signed = false;
  NodeId owner;  // meaningful when is_signed (OpenDHT checked the signature)
  std::uint64_t id = 0;
  std::uint16_t seq = 0;
  Bytes data;
};

class DhtClient {
public:
  virtual ~DhtClient() = default;
  // Signs the value with the node's key and puts it under our value type.
  virtual void put(const DhtLocation& location, std::uint64_t value_id, std::uint16_t seq, Bytes data,
                   std::function<void(bool ok)> done) = 0;
  // When a lookup may end. Complete: when the DHT search ends (every version of a value
  // the closest nodes hold is in; a contact record needs its newest). SoonAfterValues: as
  // long again as the first values took (at least 500 ms) after they came, for lookups
  // where some value now beats every value later (a node that just left stays among the
  // closest for a while, and a complete search waits about a second for it).
  enum class End { Complete, SoonAfterValues };
  // Calls `done` exactly once: when the lookup ends, or at the deadline with what arrived.
  virtual void get(const DhtLocation& location, std::chrono::milliseconds timeout,
                   std::function<void(std::vector<DhtValue>)> done, End end = End::Complete) = 0;
  virtual bool connected() const = 0;
};

}  // namespace annexswarm
