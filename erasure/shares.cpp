#include "erasure/shares.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "protocol/crypto.hpp"
#include "protocol/peer_frames.hpp"

namespace annexswarm::erasure {
namespace {
constexpr std::uint32_t kAlign = 64;  // ISA-L's vector code likes whole 64-byte lines
}  // namespace

// Not in the anonymous namespace: ObjectRebuilder's state holds these.
namespace detail {
class File {
public:
  File() = default;
  File(const File&) = delete;
  File(File&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  static Result<File> open(const std::filesystem::path& path, int flags) {
    File f;
    f.path_ = path;
    f.fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (f.fd_ < 0) return Error{"cannot open " + path.string() + ": " + std::strerror(errno)};
    return f;
  }
  // Reads exactly `n` bytes at `offset`; false at the end of the file.
  Result<bool> read(std::uint8_t* p, std::size_t n, std::uint64_t offset) const {
    while (n > 0) {
      auto got = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Error{"cannot read " + path_.string() + ": " + std::strerror(errno)};
      if (got == 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
      offset += static_cast<std::uint64_t>(got);
    }
    return true;
  }
  Result<bool> write(const std::uint8_t* p, std::size_t n, std::uint64_t offset) const {
    while (n > 0) {
      auto put = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return Error{"cannot write " + path_.string() + ": " + std::strerror(errno) + " (disk full?)"};
      p += put;
      n -= static_cast<std::size_t>(put);
      offset += static_cast<std::uint64_t>(put);
    }
    return true;
  }
  Result<bool> finish() const {
    if (::fsync(fd_) != 0) return Error{"cannot flush " + path_.string() + ": " + std::strerror(errno)};
    return true;
  }

private:
  int fd_ = -1;
  std::filesystem::path path_;
};

// Rebuilding tables, made once per distinct choice of units to rebuild from and to rebuild.
class RebuilderCache {
public:
  explicit RebuilderCache(ShareShape shape) : codec_(shape) {}
  Result<const Rebuilder*> get(const std::vector<unsigned>& from, const std::vector<unsigned>& wanted) {
    auto key = std::make_pair(from, wanted);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      auto r = codec_.rebuilder(from, wanted);
      if (!r) return Error{r.error()};
      it = cache_.emplace(key, std::move(*r)).first;
    }
    return &it->second;
  }

private:
  Codec codec_;
  std::map<std::pair<std::vector<unsigned>, std::vector<unsigned>>, Rebuilder> cache_;
};

}  // namespace detail

namespace {
using detail::File;
using detail::RebuilderCache;

Result<std::vector<File>> create_all(const std::vector<std::filesystem::path>& paths) {
  std::vector<File> out;
  for (const auto& p : paths) {
    auto f = File::open(p, O_WRONLY | O_CREAT | O_TRUNC);
    if (!f) return Error{f.error()};
    out.push_back(std::move(*f));
  }
  return out;
}

std::vector<std::uint8_t*> pointers(std::vector<Bytes>& buffers, const std::vector<unsigned>& which) {
  std::vector<std::uint8_t*> out;
  for (auto i : which) out.push_back(buffers[i].data());
  return out;
}

// Writes segment `segment` of the object into `out` from the K units `good` of `units`
// (the data units not among them rebuilt first), feeding `hash` in order.
Result<bool> write_segment(const ShareLayout& layout, RebuilderCache& tables, std::vector<Bytes>& units,
                           const std::vector<unsigned>& good, const File& out, std::uint64_t segment, ContentHash* hash) {
  const unsigned k = layout.shape.k;
  std::vector<unsigned> missing;
  for (unsigned i = 0; i < k; ++i)
    if (std::find(good.begin(), good.end(), i) == good.end()) missing.push_back(i);
  if (!missing.empty()) {
    auto r = tables.get(good, missing);
    if (!r) return Error{r.error()};
    auto from = pointers(units, good);
    auto to = pointers(units, missing);
    (*r)->run(layout.unit, from.data(), to.data());
  }
  auto at = segment * layout.segment_bytes();
  for (unsigned i = 0; i < k; ++i) {
    auto offset = at + std::uint64_t{i} * layout.unit;
    if (offset >= layout.object_size) break;
    auto take = std::min<std::uint64_t>(layout.unit, layout.object_size - offset);
    if (auto w = out.write(units[i].data(), take, offset); !w) return Error{w.error()};
    if (hash) hash->update(ByteView(units[i].data(), take));
  }
  return true;
}

// Reads the units of one segment from the shares at hand, data shares first, checking
// each against its digest, until K good ones are in `buffers`.
class SegmentReader {
public:
  SegmentReader(const ShareLayout& layout, const ShareFiles& shares, const ShareDigests& digests)
      : layout_(layout), digests_(digests), files_(layout.shape.n()) {
    for (unsigned i = 0; i < layout.shape.n() && i < shares.size(); ++i)
      if (shares[i])
        if (auto f = File::open(*shares[i], O_RDONLY)) files_[i].emplace(std::move(*f));
  }

  Result<std::vector<unsigned>> gather(std::uint64_t segment, std::vector<Bytes>& buffers, RebuildReport& report) {
    const unsigned k = layout_.shape.k;
    std::vector<unsigned> good;
    for (unsigned i = 0; i < layout_.shape.n() && good.size() < k; ++i) {
      if (!files_[i]) continue;
      auto& buf = buffers[i];
      auto read = files_[i]->read(buf.data(), layout_.unit, segment * layout_.unit);
      if (!read) return Error{read.error()};
      if (*read && digests_.unit_matches(i, segment, buf)) {
        good.push_back(i);
      } else {
        report.corrupt_units.emplace_back(i, segment);  // short or wrong
      }
    }
    if (good.size() < k)
      return Error{"segment " + std::to_string(segment) + " has " + std::to_string(good.size()) +
                   " intact shares, and " + std::to_string(k) + " are needed to rebuild it"};
    return good;
  }

private:
  const ShareLayout& layout_;
  const ShareDigests& digests_;
  std::vector<std::optional<File>> files_;
};

Result<bool> check_shape(const ShareLayout& layout, std::size_t files, const ShareDigests* digests) {
  if (layout.shape.k == 0 || layout.shape.m == 0 || layout.unit == 0) return Error{"the share layout is empty"};
  if (files != layout.shape.n())
    return Error{"expected " + std::to_string(layout.shape.n()) + " share files, got " + std::to_string(files)};
  if (digests) {
    if (digests->units.size() != layout.shape.n()) return Error{"the share digests are for another shape"};
    for (const auto& d : digests->units)
      if (!d.empty() && d.size() != layout.segments() * 32) return Error{"the share digests are for another size"};
  }
  return true;
}

}  // namespace

ShareLayout ShareLayout::plan(ShareShape shape, std::uint64_t object_size) {
  ShareLayout l{shape, object_size, peer::kManifestChunk};
  auto per_share = (object_size + shape.k - 1) / std::max(shape.k, 1u);
  if (per_share < l.unit)
    l.unit = static_cast<std::uint32_t>(std::max<std::uint64_t>(kAlign, (per_share + kAlign - 1) / kAlign * kAlign));
  return l;
}

Bytes ShareDigests::root(unsigned share) const {
  auto d = crypto::sha256(units.at(share));
  return Bytes(d.begin(), d.end());
}

bool ShareDigests::unit_matches(unsigned share, std::uint64_t segment, ByteView bytes) const {
  if (share < units.size() && units[share].empty()) return true;  // a share checked already
  if (share >= units.size() || (segment + 1) * 32 > units[share].size()) return false;
  auto d = crypto::sha256(bytes);
  return std::equal(d.begin(), d.end(), units[share].begin() + static_cast<std::ptrdiff_t>(segment * 32));
}

Result<ShareDigests> encode_object(const std::filesystem::path& object, const ShareLayout& layout,
                                   const std::vector<std::filesystem::path>& shares, const Progress& progress) {
  if (auto ok = check_shape(layout, shares.size(), nullptr); !ok) return Error{ok.error()};
  auto in = File::open(object, O_RDONLY);
  if (!in) return Error{in.error()};
  auto out = create_all(shares);
  if (!out) return Error{out.error()};
  const unsigned k = layout.shape.k, n = layout.shape.n();
  Codec codec(layout.shape);
  std::vector<Bytes> units(n, Bytes(layout.unit));
  std::vector<unsigned> data(k), parity(layout.shape.m);
  for (unsigned i = 0; i < k; ++i) data[i] = i;
  for (unsigned i = 0; i < layout.shape.m; ++i) parity[i] = k + i;
  auto data_ptrs = pointers(units, data), parity_ptrs = pointers(units, parity);
  ShareDigests digests;
  digests.units.assign(n, Bytes());
  for (auto& d : digests.units) d.reserve(layout.segments() * 32);
  for (std::uint64_t s = 0; s < layout.segments(); ++s) {
    auto at = s * layout.segment_bytes();
    for (unsigned i = 0; i < k; ++i) {
      auto offset = at + std::uint64_t{i} * layout.unit;
      auto take = offset >= layout.object_size ? 0 : std::min<std::uint64_t>(layout.unit, layout.object_size - offset);
      if (take > 0) {
        auto r = in->read(units[i].data(), take, offset);
        if (!r) return Error{r.error()};
        if (!*r) return Error{object.string() + " is shorter than " + std::to_string(layout.object_size) + " bytes"};
      }
      std::fill(units[i].begin() + static_cast<std::ptrdiff_t>(take), units[i].end(), 0);
    }
    codec.encode(layout.unit, data_ptrs.data(), parity_ptrs.data());
    for (unsigned i = 0; i < n; ++i) {
      auto d = crypto::sha256(units[i]);
      digests.units[i].insert(digests.units[i].end(), d.begin(), d.end());
      if (auto w = (*out)[i].write(units[i].data(), layout.unit, s * layout.unit); !w) return Error{w.error()};
    }
    if (progress) progress(std::min(layout.object_size, at + layout.segment_bytes()));
  }
  for (auto& f : *out)
    if (auto r = f.finish(); !r) return Error{r.error()};
  return digests;
}

Result<RebuildReport> decode_object(const ShareLayout& layout, const ShareFiles& shares, const ShareDigests& digests,
                                    const std::filesystem::path& out, const Progress& progress, ContentHash* hash) {
  if (auto ok = check_shape(layout, shares.size(), &digests); !ok) return Error{ok.error()};
  auto file = File::open(out, O_WRONLY | O_CREAT | O_TRUNC);
  if (!file) return Error{file.error()};
  RebuilderCache tables(layout.shape);
  SegmentReader reader(layout, shares, digests);
  std::vector<Bytes> units(layout.shape.n(), Bytes(layout.unit));
  RebuildReport report;
  for (std::uint64_t s = 0; s < layout.segments(); ++s) {
    auto good = reader.gather(s, units, report);
    if (!good) return Error{good.error()};
    if (auto w = write_segment(layout, tables, units, *good, *file, s, hash); !w) return Error{w.error()};
    if (progress) progress(std::min(layout.object_size, (s + 1) * layout.segment_bytes()));
  }
  if (auto r = file->finish(); !r) return Error{r.error()};
  return report;
}

struct ObjectRebuilder::State {
  ShareLayout layout;
  File out;
  ContentHash* hash = nullptr;
  RebuilderCache tables;
  std::vector<Bytes> units;
  State(const ShareLayout& l, File f, ContentHash* h)
      : layout(l), out(std::move(f)), hash(h), tables(l.shape), units(l.shape.n(), Bytes(l.unit)) {}
};

ObjectRebuilder::ObjectRebuilder(std::unique_ptr<State> state) : state_(std::move(state)) {}
ObjectRebuilder::~ObjectRebuilder() = default;

Result<std::unique_ptr<ObjectRebuilder>> ObjectRebuilder::open(const ShareLayout& layout,
                                                               const std::filesystem::path& out, ContentHash* hash) {
  if (auto ok = check_shape(layout, layout.shape.n(), nullptr); !ok) return Error{ok.error()};
  // Never through a symbolic link planted where the object goes.
  auto file = File::open(out, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW);
  if (!file) return Error{file.error()};
  return std::unique_ptr<ObjectRebuilder>(new ObjectRebuilder(std::make_unique<State>(layout, std::move(*file), hash)));
}

Result<bool> ObjectRebuilder::write_next(const std::vector<std::pair<unsigned, std::filesystem::path>>& from) {
  auto& st = *state_;
  const auto& layout = st.layout;
  const unsigned k = layout.shape.k;
  if (next_ >= layout.segments()) return Error{"every segment is written already"};
  if (from.size() != k) return Error{"a segment needs " + std::to_string(k) + " units"};
  std::vector<unsigned> good;
  for (const auto& [share, path] : from) {
    if (share >= layout.shape.n() || std::find(good.begin(), good.end(), share) != good.end())
      return Error{"units of distinct shares are needed"};
    // Complete, or still being fetched (renamed from .part to its name when done).
    auto part = path;
    part += ".part";
    auto open_unit = [&]() -> Result<File> {
      if (auto f = File::open(path, O_RDONLY)) return f;
      if (auto f = File::open(part, O_RDONLY)) return f;
      return File::open(path, O_RDONLY);  // renamed in between
    };
    auto file = open_unit();
    if (!file) return Error{file.error()};
    auto read = file->read(st.units[share].data(), layout.unit, next_ * layout.unit);
    if (!read) return Error{read.error()};
    if (!*read) return Error{path.string() + " ends before segment " + std::to_string(next_)};
    good.push_back(share);
  }
  std::sort(good.begin(), good.end());
  if (auto w = write_segment(layout, st.tables, st.units, good, st.out, next_, st.hash); !w) return Error{w.error()};
  ++next_;
  return true;
}

Result<bool> ObjectRebuilder::finish() {
  if (next_ != state_->layout.segments()) return Error{"the object is incomplete"};
  return state_->out.finish();
}

Result<HeldSegments> plan_segments(const ShareLayout& layout, const HeldSegments& held, const std::vector<bool>& usable) {
  const unsigned k = layout.shape.k, n = layout.shape.n();
  const auto segments = layout.segments();
  if (held.size() != n || usable.size() != n) return Error{"one row per share expected"};
  auto holds = [&](unsigned i, std::uint64_t s) { return s < held[i].size() && held[i][s]; };
  HeldSegments add(n);
  for (std::uint64_t s = 0; s < segments; ++s) {
    unsigned have = 0;
    for (unsigned i = 0; i < n; ++i) have += holds(i, s) ? 1 : 0;
    const auto start = static_cast<unsigned>((s * k) % n);
    for (unsigned j = 0; j < n && have < k; ++j) {
      unsigned i = (start + j) % n;
      if (!usable[i] || holds(i, s)) continue;
      if (add[i].empty()) add[i].assign(segments, false);
      add[i][s] = true;
      ++have;
    }
    if (have < k)
      return Error{"segment " + std::to_string(s) + " can be had from " + std::to_string(have) + " shares, and " +
                   std::to_string(k) + " are needed to rebuild it"};
  }
  return add;
}

Result<RebuildReport> rebuild_shares(const ShareLayout& layout, const ShareFiles& shares, const ShareDigests& digests,
                                     const std::vector<unsigned>& wanted,
                                     const std::vector<std::filesystem::path>& out) {
  if (auto ok = check_shape(layout, shares.size(), &digests); !ok) return Error{ok.error()};
  if (wanted.size() != out.size()) return Error{"one output file per wanted share"};
  for (auto w : wanted)
    if (w >= layout.shape.n()) return Error{"there is no share " + std::to_string(w)};
  auto files = create_all(out);
  if (!files) return Error{files.error()};
  RebuilderCache tables(layout.shape);
  SegmentReader reader(layout, shares, digests);
  std::vector<Bytes> units(layout.shape.n(), Bytes(layout.unit));
  std::vector<Bytes> rebuilt(wanted.size(), Bytes(layout.unit));
  std::vector<std::uint8_t*> to;
  for (auto& b : rebuilt) to.push_back(b.data());
  RebuildReport report;
  for (std::uint64_t s = 0; s < layout.segments(); ++s) {
    auto good = reader.gather(s, units, report);
    if (!good) return Error{good.error()};
    auto r = tables.get(*good, wanted);
    if (!r) return Error{r.error()};
    auto from = pointers(units, *good);
    (*r)->run(layout.unit, from.data(), to.data());
    for (std::size_t w = 0; w < wanted.size(); ++w) {
      if (!digests.unit_matches(wanted[w], s, rebuilt[w]))
        return Error{"rebuilt share " + std::to_string(wanted[w]) + " does not match its digest at segment " +
                     std::to_string(s) + ": the share digests are wrong"};
      if (auto put = (*files)[w].write(rebuilt[w].data(), layout.unit, s * layout.unit); !put) return Error{put.error()};
    }
  }
  for (auto& f : *files)
    if (auto r = f.finish(); !r) return Error{r.error()};
  return report;
}

}  // namespace annexswarm::erasure
