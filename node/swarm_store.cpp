#include "node/swarm_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/bytes.hpp"
#include "protocol/content_hash.hpp"
#include "protocol/records.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

AnnexRepo swarm_store(const fs::path& stores_dir, const std::string& uuid) {
  AnnexRepo store;
  store.path = stores_dir / uuid;
  store.git_dir = store.path;
  store.objects_dir = store.path / "annex" / "objects";
  store.uuid = uuid;
  store.bare = true;
  store.store = true;
  return store;
}

std::uint64_t bytes_below(const fs::path& dir) {
  std::error_code ec;
  std::uint64_t bytes = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it.depth() == 0 && it->path().filename() == ".trash") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) bytes += it->file_size(ec);
  }
  return bytes;
}

std::vector<std::string> existing_swarm_stores(const fs::path& stores_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(stores_dir, ec)) {
    auto name = entry.path().filename().string();
    if (entry.is_directory(ec) && is_annex_uuid(name)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path store_object_path(const AnnexRepo& store, const AnnexKey& key) {
  return store.objects_dir / key.hash_dir_lower() / key.str() / key.str();
}

Result<std::uint64_t> import_into_store(const AnnexRepo& store, const AnnexKey& key, const fs::path& file,
                                        const std::function<void(std::uint64_t)>& progress) {
  return copy_verified(file, key, store_object_path(store, key), progress, true);
}

Result<std::uint64_t> copy_verified(const fs::path& file, const AnnexKey& key, const fs::path& dest,
                                    const std::function<void(std::uint64_t)>& progress, bool read_only) {
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec) return Error{"cannot create " + dest.parent_path().string() + ": " + ec.message()};
  int in = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Error{"cannot read " + file.string() + ": " + std::strerror(errno)};
  auto tmp = dest;
  tmp += ".tmp";
  // A temp file left by a daemon killed mid-STORE (or anything planted there, a symbolic
  // link included) is removed, and ours is created fresh, writable until it is complete.
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    ::close(in);
    return Error{"cannot remove the stale " + tmp.string() + ": " + std::strerror(errno)};
  }
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    return Error{"cannot write " + tmp.string() + ": " + std::strerror(errno)};
  }
  auto fail = [&](std::string why) -> Result<std::uint64_t> {
    ::close(in);
    ::close(out);
    ::unlink(tmp.c_str());
    return Error{std::move(why)};
  };
  auto hash = key.verifiable() ? ContentHash::start(key.hash()) : std::nullopt;
  Bytes buf(1 << 20);
  std::uint64_t total = 0;
  while (true) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot read " + file.string() + ": " + std::strerror(errno));
    if (n == 0) break;
    if (hash) hash->update(ByteView(buf.data(), static_cast<std::size_t>(n)));
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, static_cast<std::size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail("cannot write " + tmp.string() + ": " + std::strerror(errno) + " (disk full?)");
      off += w;
    }
    total += static_cast<std::uint64_t>(n);
    if (progress) progress(total);
  }
  if (auto expected = key.content_size(); expected && *expected != total)
    return fail("the file has " + std::to_string(total) + " bytes, the key says " + std::to_string(*expected));
  if (hash && hash->finish_hex() != key.digest_hex()) return fail("the file does not match the key's hash");
  if (::fsync(out) != 0) return fail("cannot flush " + tmp.string() + ": " + std::strerror(errno) + " (disk full?)");
  // Read-only like git-annex's own objects, once complete.
  if (read_only && ::fchmod(out, 0444) != 0) return fail("cannot make " + tmp.string() + " read-only: " + std::strerror(errno));
  ::close(in);
  ::close(out);
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error{"cannot move the object into " + dest.string() + ": " + std::strerror(err)};
  }
  return total;
}

Result<bool> move_into_store(const AnnexRepo& store, const AnnexKey& key, const fs::path& file) {
  auto dest = store_object_path(store, key);
  std::error_code ec;
  if (fs::exists(dest, ec)) {
    fs::remove(file, ec);
    return false;
  }
  fs::create_directories(dest.parent_path(), ec);
  if (ec) return Error{"cannot make " + dest.parent_path().string() + ": " + ec.message()};
  if (::chmod(file.c_str(), 0444) != 0) return Error{"cannot make " + file.string() + " read-only: " + std::strerror(errno)};
  if (::rename(file.c_str(), dest.c_str()) != 0)
    return Error{"cannot move " + file.string() + " into the store: " + std::strerror(errno)};
  return true;
}

Result<bool> remove_from_store(const AnnexRepo& store, const AnnexKey& key, const fs::path& trash) {
  auto path = store_object_path(store, key);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return Error{"cannot remove " + path.string() + ": " + std::strerror(errno)};
  }
  auto dest = trash / store.uuid / key.str();
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec) return Error{"cannot make the trash " + dest.parent_path().string() + ": " + ec.message()};
  if (::rename(path.c_str(), dest.c_str()) != 0)
    return Error{"cannot move " + path.string() + " to the trash: " + std::strerror(errno)};
  // The grace period runs from now.
  ::utimensat(AT_FDCWD, dest.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
  fs::remove(path.parent_path(), ec);  // the KEY directory, when empty
  return true;
}

Result<bool> restore_from_trash(const AnnexRepo& store, const AnnexKey& key, const fs::path& trash) {
  auto from = trash / store.uuid / key.str();
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error{"the trash of store " + store.uuid + " does not hold " + key.str()};
  auto dest = store_object_path(store, key);
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec) return Error{"cannot create " + dest.parent_path().string() + ": " + ec.message()};
  if (::rename(from.c_str(), dest.c_str()) != 0)
    return Error{"cannot put " + key.str() + " back: " + std::strerror(errno)};
  return true;
}

std::vector<Trashed> list_trash(const fs::path& trash) {
  std::vector<Trashed> out;
  std::error_code ec;
  for (const auto& store : fs::directory_iterator(trash, ec)) {
    if (!store.is_directory(ec) || !is_annex_uuid(store.path().filename().string())) continue;
    for (const auto& entry : fs::directory_iterator(store.path(), ec)) {
      if (!entry.is_regular_file(ec)) continue;
      out.push_back({store.path().filename().string(), entry.path().filename().string(), entry.file_size(ec),
                     entry.last_write_time(ec)});
    }
  }
  std::sort(out.begin(), out.end(), [](const Trashed& a, const Trashed& b) { return a.removed < b.removed; });
  return out;
}

std::size_t purge_trash(const fs::path& trash, fs::file_time_type cutoff) {
  std::size_t purged = 0;
  std::error_code ec;
  for (const auto& t : list_trash(trash))
    if (t.removed < cutoff && fs::remove(trash / t.store / t.key, ec)) ++purged;
  return purged;
}

std::size_t purge_trash_for_space(const fs::path& trash, std::uint64_t needed,
                                  const std::function<std::uint64_t()>& available) {
  std::size_t purged = 0;
  std::error_code ec;
  if (available() >= needed) return 0;
  auto trashed = list_trash(trash);
  // When even an empty trash would not make room, it is kept: the store fails either way.
  std::uint64_t total = 0;
  for (const auto& t : trashed) total += t.bytes;
  if (available() + total < needed) return 0;
  for (const auto& t : trashed) {
    if (available() >= needed) break;
    if (fs::remove(trash / t.store / t.key, ec)) ++purged;
  }
  return purged;
}

}  // namespace annexswarm
