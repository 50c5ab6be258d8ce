#pragma once
// Where a download's chunks go: `<destination>.part`, the `.part.chunks` list of chunks
// that are in it and verified, and the object hash, fed in order as the finished prefix
// grows. Blocking file I/O and hashing: the fetcher runs it on a worker thread, never on
// the network thread, and only one thread at a time touches it.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/content_hash.hpp"
#include "protocol/result.hpp"

namespace annexswarm {

// What the peers agreed the object looks like: SHA-256 per chunk.
struct ObjectManifest {
  std::uint64_t size = 0;
  std::uint32_t chunk = 0;
  Bytes hashes;  // 32 bytes per chunk
  std::size_t chunk_count() const { return hashes.size() / 32; }
  std::size_t chunk_length(std::size_t index) const;
  bool operator<(const ObjectManifest& o) const;
  friend bool operator==(const ObjectManifest&, const ObjectManifest&) = default;
};

class ChunkSink {
public:
  // Opens (creating) the partial file and keeps the listed chunks that still verify,
  // so a restarted download resumes. `hash` is the key's digest algorithm (None for keys
  // without one). `check_chunks` false: arriving chunks are not hashed against the
  // manifest (only their length is checked) while the key's digest can check the whole
  // object: a second SHA-256 pass over every byte is what made a fast download CPU-bound.
  // When the digest then fails, recheck() finds the bad chunks. Resumed chunks, and
  // every chunk of a key without a digest, are always checked.
  static Result<std::unique_ptr<ChunkSink>> open(std::filesystem::path part, ObjectManifest manifest,
                                                 HashAlgorithm hash, bool check_chunks = true);
  ~ChunkSink();

  const std::vector<bool>& done() const { return done_; }
  const ObjectManifest& manifest() const { return manifest_; }
  std::uint64_t resumed_bytes() const { return resumed_bytes_; }

  enum class Verdict { Stored, Duplicate, Corrupt };
  // Checks the chunk against the manifest and, unless it is already in, writes it.
  Result<Verdict> accept(std::size_t chunk, ByteView bytes);
  // Flushes the file; yields the object's digest in hex (empty for keys without one).
  Result<std::string> finish();
  // After a digest that does not match: reads back every chunk stored unchecked and
  // compares it with the manifest. Yields the chunks that fail, which are missing again;
  // from now on every arriving chunk is checked, and the digest starts over.
  Result<std::vector<std::size_t>> recheck();
  // Part of the object only: chunks not `wanted` count as done and are never written (the
  // file has zeros there). Only for keys without a digest, whose chunks are all checked
  // against the manifest: the share of an erasure-coded object, fetched for some of its
  // segments. Call right after open().
  Result<bool> leave_out(const std::vector<bool>& wanted);
  // Removes the partial file and its list.
  void discard();
  // Also writes the finished prefix, in order, into `file` (truncated first; for git-annex,
  // which hashes the RETRIEVE file while it grows and fails bytes written out of order).
  // The prefix there so far (resumed chunks) goes at once. Every chunk should be checked
  // (open with check_chunks), so only bytes that match the manifest go there.
  Result<bool> mirror_to(const std::filesystem::path& file);
  std::uint64_t prefix_bytes() const;  // in order from the start: in the mirror, or hashed
  // With a mirror: flushes it; the partial file and its list are then removed (the mirror
  // holds the object).
  Result<bool> finish_mirror();

private:
  ChunkSink(std::filesystem::path part, ObjectManifest manifest, HashAlgorithm hash, bool check_chunks);
  bool matches(std::size_t chunk, ByteView bytes) const;
  // Moves the finished prefix on: into the digest, and into the mirror.
  Result<bool> advance_hash(std::size_t just_stored, ByteView bytes);
  Result<bool> write_mirror(std::size_t chunk, ByteView bytes);

  std::filesystem::path part_;
  std::filesystem::path list_;
  ObjectManifest manifest_;
  HashAlgorithm algorithm_;
  std::optional<ContentHash> hash_;
  bool check_chunks_ = true;
  std::vector<bool> done_;
  std::vector<bool> checked_;  // stored chunks known to match the manifest
  std::size_t hashed_ = 0;  // chunks [0, hashed_) are in hash_
  std::uint64_t resumed_bytes_ = 0;
  int part_fd_ = -1;
  int list_fd_ = -1;
  std::filesystem::path mirror_;
  int mirror_fd_ = -1;
  std::size_t mirrored_ = 0;  // chunks [0, mirrored_) are in the mirror
};

}  // namespace annexswarm
