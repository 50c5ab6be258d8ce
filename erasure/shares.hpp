#pragma once
// How an object becomes K+M shares and comes back from any K of them, streaming through
// files one segment at a time, so memory stays at one segment whatever the object's size.
//
// The object is cut into segments of K units; a segment's K data units and its M parity
// units go, one each, to the K+M shares; the last segment is padded with zeros. Share i is
// unit i of every segment in order, so a share is `segments x unit` bytes. A unit is at
// most one manifest chunk (1 MiB) and a share of one segment is smaller than a chunk, so a
// share's manifest chunks are exactly its units: a holder and a downloader check a share
// unit by unit with the same SHA-256 list (and root) the peer protocol already serves.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "erasure/codec.hpp"
#include "protocol/content_hash.hpp"

namespace annexswarm::erasure {

struct ShareLayout {
  ShareShape shape;
  std::uint64_t object_size = 0;
  std::uint32_t unit = 0;  // bytes of one share per segment

  // Units of one manifest chunk, or less for an object of under K chunks (one segment
  // then, so a small object costs (K+M)/K of its size, not K+M chunks).
  static ShareLayout plan(ShareShape shape, std::uint64_t object_size);
  std::uint64_t segment_bytes() const { return std::uint64_t{shape.k} * unit; }
  std::uint64_t segments() const { return (object_size + segment_bytes() - 1) / segment_bytes(); }
  std::uint64_t share_size() const { return segments() * unit; }
  friend bool operator==(const ShareLayout&, const ShareLayout&) = default;
};

// SHA-256 of every unit of every share: what a share is checked against, unit by unit.
struct ShareDigests {
  std::vector<Bytes> units;  // [share]: 32 bytes per segment; none: a share checked already
  // The share's manifest root: SHA-256 over its unit digests.
  Bytes root(unsigned share) const;
  bool unit_matches(unsigned share, std::uint64_t segment, ByteView bytes) const;
};

using Progress = std::function<void(std::uint64_t object_bytes_done)>;

// Writes the K+M shares of `object` to `shares` (created or truncated), and yields their
// digests. An error (unreadable object, a short read, a full disk) leaves the share files
// for the caller to remove.
Result<ShareDigests> encode_object(const std::filesystem::path& object, const ShareLayout& layout,
                                   const std::vector<std::filesystem::path>& shares, const Progress& progress = {});

// Where each share can be read from: nothing for a share that is missing.
using ShareFiles = std::vector<std::optional<std::filesystem::path>>;

struct RebuildReport {
  // Units that failed their digest (the share is corrupt there) and were rebuilt from others.
  std::vector<std::pair<unsigned, std::uint64_t>> corrupt_units;  // (share, segment)
};

// Writes the object to `out` in order from any K good shares, checking every unit read
// against `digests` (a corrupt unit is replaced from another share). An error when fewer
// than K good units of a segment exist.
// `hash`, when given, is fed the object's bytes in order (to check it against its key).
Result<RebuildReport> decode_object(const ShareLayout& layout, const ShareFiles& shares, const ShareDigests& digests,
                                    const std::filesystem::path& out, const Progress& progress = {},
                                    ContentHash* hash = nullptr);

// Which segments each share holds (or is to be asked for), [share][segment]; an empty row:
// none.
using HeldSegments = std::vector<std::vector<bool>>;

// Writes an object segment by segment, in order, as the units for each come in (a download
// rebuilds while its shares are still arriving). Each unit is read from the file given for
// it, or from that file's `.part` while its fetch is still writing it; units are taken as
// checked (a download checks each against its share's manifest as it comes).
class ObjectRebuilder {
public:
  // `hash`, when given, is fed the object's bytes in order (kept by the caller).
  static Result<std::unique_ptr<ObjectRebuilder>> open(const ShareLayout& layout, const std::filesystem::path& out,
                                                       ContentHash* hash);
  ~ObjectRebuilder();
  // The next segment (segments go in order), from K units: (share, file) each.
  Result<bool> write_next(const std::vector<std::pair<unsigned, std::filesystem::path>>& units);
  std::uint64_t written() const { return next_; }  // segments so far
  // Flushes the object; call once every segment is written.
  Result<bool> finish();

private:
  struct State;
  explicit ObjectRebuilder(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  std::uint64_t next_ = 0;
};

// A download from every holder at once: which segments to fetch of which share so that
// each segment has K shares, the load spread evenly over the shares that can still be
// fetched (`usable`), and what is `held` already kept. Segment s starts at share s*K mod n
// (a one-segment object: the data shares, nothing to decode). Yields, per share, the
// segments to add to what it holds (empty: nothing from it); an error names a segment
// that cannot reach K.
Result<HeldSegments> plan_segments(const ShareLayout& layout, const HeldSegments& held, const std::vector<bool>& usable);

// Rebuilds the shares `wanted` (written to `out`, one path each) from the good ones among
// `shares`; each rebuilt unit is checked against `digests` before it is written.
Result<RebuildReport> rebuild_shares(const ShareLayout& layout, const ShareFiles& shares, const ShareDigests& digests,
                                     const std::vector<unsigned>& wanted,
                                     const std::vector<std::filesystem::path>& out);

}  // namespace annexswarm::erasure
