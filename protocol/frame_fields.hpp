#pragma once
// How a peer frame is declared: its type number, its name, and its fields in wire order,
// each with the rule that bounds and checks it. The codec (peer_frames.cpp) reads these
// lists both ways, so the encoder and the decoder cannot disagree on order or limits:
//
//   template <> inline constexpr auto kSpec<Get> =
//       spec<Get>(7, "GET", field(&Get::id), field(&Get::key, rule::Key{}), ...);
//
// Integer fields are bounded by their C++ type. A frame may also have a cross-field
// check: a `check(const F&)` overload returning why it is invalid, or nullptr.
#include <cstddef>
#include <cstdint>
#include <tuple>

namespace annexswarm::peer {

namespace rule {
struct Plain {};                        // integers, booleans, enums: bounded by their type
struct Text { std::size_t max; };       // a string of at most `max` bytes
struct Key {};                          // a valid annex key (safe as a path component)
struct Uuid { bool allow_empty; };      // an annex UUID (or, when allowed, empty)
struct IpOrEmpty {};                    // an IP literal, or empty
struct Blob { std::size_t max; std::size_t exact = 0; };  // bytes; exact != 0: that many
struct KeyList { std::size_t max; };    // at most `max` valid annex keys
struct UintList { std::size_t max; };   // at most `max` unsigned integers
}  // namespace rule

template <class Frame, class Member, class Rule>
struct Field {
  Member Frame::*member;
  Rule rule;
};

template <class Frame, class Member>
constexpr Field<Frame, Member, rule::Plain> field(Member Frame::*member) {
  return {member, {}};
}
template <class Frame, class Member, class Rule>
constexpr Field<Frame, Member, Rule> field(Member Frame::*member, Rule r) {
  return {member, r};
}

template <class Frame, class... Fields>
struct FrameSpec {
  std::uint32_t type;
  const char* name;
  std::tuple<Fields...> fields;
};

template <class Frame, class... Fields>
constexpr FrameSpec<Frame, Fields...> spec(std::uint32_t type, const char* name, Fields... fields) {
  return {type, name, std::tuple<Fields...>(fields...)};
}

// Specialised once per frame, right below its struct.
template <class Frame>
inline constexpr auto kSpec = nullptr;

// No cross-field rule unless a frame declares one.
inline const char* check(const auto&) { return nullptr; }

}  // namespace annexswarm::peer
