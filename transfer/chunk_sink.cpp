#include "transfer/chunk_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <tuple>

#include "protocol/crypto.hpp"

namespace annexswarm {
namespace {
// Opens (creating it if needed) a regular file, never following a symbolic link in its
// last component; -1 with errno set otherwise (ELOOP for a link, EINVAL for a non-file).
int open_regular(const std::filesystem::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd < 0) return -1;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    errno = EINVAL;
    return -1;
  }
  // O_NONBLOCK only kept a FIFO from blocking the open; regular files ignore it, clear it anyway.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::string refusal(const std::filesystem::path& path, int err) {
  if (err == ELOOP) return "refusing to write " + path.string() + ": it is a symbolic link (remove it and try again)";
  if (err == EINVAL) return "refusing to write " + path.string() + ": it is not a regular file";
  return "cannot write " + path.string() + ": " + std::strerror(err);
}
}  // namespace

std::size_t ObjectManifest::chunk_length(std::size_t index) const {
  auto offset = static_cast<std::uint64_t>(index) * chunk;
  return static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - offset));
}

bool ObjectManifest::operator<(const ObjectManifest& o) const {
  return std::tie(size, chunk, hashes) < std::tie(o.size, o.chunk, o.hashes);
}

ChunkSink::ChunkSink(std::filesystem::path part, ObjectManifest manifest, HashAlgorithm hash, bool check_chunks)
    : part_(std::move(part)),
      manifest_(std::move(manifest)),
      algorithm_(hash),
      hash_(ContentHash::start(hash)),
      check_chunks_(check_chunks) {
  list_ = part_;
  list_ += ".chunks";
  done_.assign(manifest_.chunk_count(), false);
  checked_.assign(manifest_.chunk_count(), false);
}

ChunkSink::~ChunkSink() {
  if (mirror_fd_ >= 0) ::close(mirror_fd_);
  if (part_fd_ >= 0) ::close(part_fd_);
  if (list_fd_ >= 0) ::close(list_fd_);
}

Result<std::unique_ptr<ChunkSink>> ChunkSink::open(std::filesystem::path part, ObjectManifest manifest,
                                                   HashAlgorithm hash, bool check_chunks) {
  std::unique_ptr<ChunkSink> sink(new ChunkSink(std::move(part), std::move(manifest), hash, check_chunks));
  // Without a digest for the whole object, the chunk hashes are all there is.
  if (!sink->hash_) sink->check_chunks_ = true;
  auto& s = *sink;
  // Never through a symbolic link, and only into a regular file: a link planted at
  // DEST.part must not make us overwrite what it points to.
  s.part_fd_ = open_regular(s.part_, O_RDWR);
  if (s.part_fd_ < 0) return Error{refusal(s.part_, errno)};
  if (::ftruncate(s.part_fd_, static_cast<off_t>(s.manifest_.size)) != 0)
    return Error{"cannot size " + s.part_.string() + ": " + std::strerror(errno) + " (disk full?)"};
  // Resume: chunks listed as done are kept if they still match the manifest.
  std::ifstream list;
  if (struct stat st {}; ::lstat(s.list_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) list.open(s.list_);
  std::size_t index;
  Bytes buf;
  while (list >> index) {
    if (index >= s.done_.size() || s.done_[index]) continue;
    buf.resize(s.manifest_.chunk_length(index));
    auto offset = static_cast<off_t>(index) * s.manifest_.chunk;
    if (::pread(s.part_fd_, buf.data(), buf.size(), offset) != static_cast<ssize_t>(buf.size())) continue;
    if (s.matches(index, buf)) {
      s.done_[index] = s.checked_[index] = true;
      s.resumed_bytes_ += buf.size();
    }
  }
  s.list_fd_ = open_regular(s.list_, O_WRONLY | O_APPEND);
  if (s.list_fd_ < 0) return Error{refusal(s.list_, errno)};
  if (auto r = s.advance_hash(s.done_.size(), {}); !r) return Error{r.error()};
  return sink;
}

Result<bool> ChunkSink::leave_out(const std::vector<bool>& wanted) {
  if (hash_) return Error{"a part of an object cannot be checked against the key's digest"};
  if (wanted.size() != done_.size())
    return Error{"asked for chunks of an object of " + std::to_string(wanted.size()) + " chunks; it has " +
                 std::to_string(done_.size())};
  for (std::size_t i = 0; i < wanted.size(); ++i)
    if (!wanted[i]) done_[i] = checked_[i] = true;
  return true;
}

bool ChunkSink::matches(std::size_t chunk, ByteView bytes) const {
  if (bytes.size() != manifest_.chunk_length(chunk)) return false;
  auto digest = crypto::sha256(bytes);
  return std::equal(digest.begin(), digest.end(), manifest_.hashes.begin() + static_cast<std::ptrdiff_t>(chunk * 32));
}

Result<ChunkSink::Verdict> ChunkSink::accept(std::size_t chunk, ByteView bytes) {
  if (chunk >= done_.size() || bytes.size() != manifest_.chunk_length(chunk)) return Verdict::Corrupt;
  if (check_chunks_ && !matches(chunk, bytes)) return Verdict::Corrupt;
  if (done_[chunk]) return Verdict::Duplicate;
  checked_[chunk] = check_chunks_;
  auto offset = static_cast<off_t>(chunk) * manifest_.chunk;
  if (::pwrite(part_fd_, bytes.data(), bytes.size(), offset) != static_cast<ssize_t>(bytes.size()))
    return Error{"cannot write " + part_.string() + ": " + std::strerror(errno) + " (disk full?)"};
  auto line = std::to_string(chunk) + "\n";
  if (::write(list_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return Error{"cannot write " + list_.string() + ": " + std::strerror(errno) + " (disk full?)"};
  done_[chunk] = true;
  if (auto r = advance_hash(chunk, bytes); !r) return Error{r.error()};
  return Verdict::Stored;
}

// The chunk just stored is hashed from memory; others (resumed, or stored ahead of a
// gap) are read back from the file, which the page cache usually still holds.
Result<bool> ChunkSink::advance_hash(std::size_t just_stored, ByteView bytes) {
  if (!hash_ && mirror_fd_ < 0) return true;
  Bytes buf;
  while (hashed_ < done_.size() && done_[hashed_]) {
    ByteView data = bytes;
    if (hashed_ != just_stored) {
      buf.resize(manifest_.chunk_length(hashed_));
      auto offset = static_cast<off_t>(hashed_) * manifest_.chunk;
      if (::pread(part_fd_, buf.data(), buf.size(), offset) != static_cast<ssize_t>(buf.size()))
        return Error{"cannot read back " + part_.string() + ": " + std::strerror(errno)};
      data = buf;
    }
    if (hash_) hash_->update(data);
    if (mirror_fd_ >= 0 && hashed_ == mirrored_)
      if (auto r = write_mirror(hashed_, data); !r) return r;
    ++hashed_;
  }
  return true;
}

Result<bool> ChunkSink::write_mirror(std::size_t chunk, ByteView bytes) {
  auto offset = static_cast<off_t>(chunk) * manifest_.chunk;
  for (std::size_t at = 0; at < bytes.size();) {
    auto n = ::pwrite(mirror_fd_, bytes.data() + at, bytes.size() - at, offset + static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{"cannot write " + mirror_.string() + ": " + std::strerror(errno) + " (disk full?)"};
    at += static_cast<std::size_t>(n);
  }
  ++mirrored_;
  return true;
}

Result<bool> ChunkSink::mirror_to(const std::filesystem::path& file) {
  mirror_ = file;
  mirror_fd_ = open_regular(mirror_, O_WRONLY);
  if (mirror_fd_ < 0) return Error{refusal(mirror_, errno)};
  if (::ftruncate(mirror_fd_, 0) != 0) return Error{"cannot empty " + mirror_.string() + ": " + std::strerror(errno)};
  mirrored_ = 0;
  // The prefix finished before (resumed chunks) goes in now.
  Bytes buf;
  for (std::size_t i = 0; i < done_.size() && done_[i]; ++i) {
    buf.resize(manifest_.chunk_length(i));
    auto offset = static_cast<off_t>(i) * manifest_.chunk;
    if (::pread(part_fd_, buf.data(), buf.size(), offset) != static_cast<ssize_t>(buf.size()))
      return Error{"cannot read back " + part_.string() + ": " + std::strerror(errno)};
    if (auto r = write_mirror(i, buf); !r) return r;
  }
  return advance_hash(done_.size(), {});  // a sink without a digest starts its prefix here
}

std::uint64_t ChunkSink::prefix_bytes() const {
  auto chunks = mirror_fd_ >= 0 ? mirrored_ : hashed_;
  if (chunks == 0) return 0;
  return std::min<std::uint64_t>(manifest_.size, static_cast<std::uint64_t>(chunks) * manifest_.chunk);
}

Result<bool> ChunkSink::finish_mirror() {
  if (mirror_fd_ < 0) return Error{"no mirror to finish"};
  if (mirrored_ != done_.size()) return Error{"the object is incomplete in " + mirror_.string()};
  if (::fsync(mirror_fd_) != 0) return Error{"cannot flush " + mirror_.string() + ": " + std::strerror(errno)};
  discard();
  return true;
}

Result<std::string> ChunkSink::finish() {
  if (std::find(done_.begin(), done_.end(), false) != done_.end()) return Error{"the object is incomplete"};
  // With a mirror, the partial file is removed once the object checks out: not flushed.
  if (mirror_fd_ < 0 && ::fsync(part_fd_) != 0)
    return Error{"cannot flush " + part_.string() + ": " + std::strerror(errno)};
  if (!hash_) return std::string();
  auto hex = hash_->finish_hex();
  hash_.reset();
  return hex;
}

Result<std::vector<std::size_t>> ChunkSink::recheck() {
  std::vector<std::size_t> bad;
  Bytes buf;
  for (std::size_t i = 0; i < done_.size(); ++i) {
    if (!done_[i] || checked_[i]) continue;
    buf.resize(manifest_.chunk_length(i));
    auto offset = static_cast<off_t>(i) * manifest_.chunk;
    if (::pread(part_fd_, buf.data(), buf.size(), offset) != static_cast<ssize_t>(buf.size()))
      return Error{"cannot read back " + part_.string() + ": " + std::strerror(errno)};
    if (matches(i, buf)) {
      checked_[i] = true;
    } else {
      done_[i] = false;
      bad.push_back(i);
    }
  }
  check_chunks_ = true;
  hash_ = ContentHash::start(algorithm_);
  hashed_ = 0;
  if (auto r = advance_hash(done_.size(), {}); !r) return Error{r.error()};
  return bad;
}

void ChunkSink::discard() {
  ::unlink(part_.c_str());
  ::unlink(list_.c_str());
}

}  // namespace annexswarm
