//! Lua scripts of the module store. A script runs atomically in Redis, so one
//! call applies a batch of mutations (blob, index, revision, generation,
//! change record) with no interleaving and in one round trip.

use std::sync::LazyLock;

use redis::Script;

use super::blobs::UNREFERENCED_BLOB_TTL_SECS;

/// Applies mutations in order. KEYS: index, revisions, generation, changes, id.
/// ARGV: blob prefix, stream max length, then groups of five:
/// op (`put` | `del`), path, revision, sha256, content (empty for `del`).
/// A blob is always written (content-addressed, so always correct); the index
/// changes only when the revision is newer than the one last applied there.
/// Returns `{store id, generation}` after the batch. The store id is created
/// on first use (from the server clock), so after Redis lost its data the
/// generation restarts under a new id and no reader mistakes it for the old.
///
/// Blobs nothing references expire without waiting for a rebuild: the
/// script keeps `{index}:refs` (HASH sha256 → how many index entries point
/// at it; built from the index on first use) and, when a path stops
/// pointing at a blob that no other path points at, gives the blob the
/// rebuild's grace expiry (`UNREFERENCED_BLOB_TTL_SECS`). A blob written
/// again by a put loses its expiry (`SET`), and a put that does not take
/// the index (an older revision) leaves its blob expiring if unreferenced.
pub static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local index, revs, genkey, changes, idkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local blob_prefix, maxlen = ARGV[1], ARGV[2]
local UNREF_TTL = {ttl}
{REFS_LUA}
local id = redis.call('GET', idkey)
if not id then
  local t = redis.call('TIME')
  id = t[1] .. '.' .. t[2]
  redis.call('SET', idkey, id)
end
for i = 3, #ARGV, 5 do
  local op, path, rev, sha, content = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3], ARGV[i+4]
  if op == 'put' then
    redis.call('SET', blob_prefix .. sha, content)
  end
  local cur = tonumber(redis.call('HGET', revs, path) or '0')
  if rev > cur then
    redis.call('HSET', revs, path, rev)
    local old = redis.call('HGET', index, path)
    if op == 'put' then
      if old ~= sha then
        redis.call('HSET', index, path, sha)
        redis.call('HINCRBY', refs, sha, 1)
        unref(old)
        local gen = redis.call('INCR', genkey)
        redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*', 'gen', gen, 'path', path, 'sha256', sha)
      end
    elseif redis.call('HDEL', index, path) == 1 then
      unref(old)
      local gen = redis.call('INCR', genkey)
      redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*', 'gen', gen, 'path', path, 'deleted', '1')
    end
  elseif op == 'put' and not redis.call('HGET', refs, sha) then
    redis.call('EXPIRE', blob_prefix .. sha, UNREF_TTL)
  end
end
return {{id, tonumber(redis.call('GET', genkey) or '0')}}
"#,
        ttl = UNREFERENCED_BLOB_TTL_SECS,
    ))
});

/// Lua shared by the scripts that change the index (expects `index`,
/// `blob_prefix` and `UNREF_TTL`): `refs` (the reference counts, built from the index the
/// first time) and `unref(sha)`, which drops one reference and lets the
/// blob expire after the grace period once none is left.
const REFS_LUA: &str = r#"
local refs = index .. ':refs'
if redis.call('EXISTS', refs) == 0 then
  local counts = {}
  for _, s in ipairs(redis.call('HVALS', index)) do counts[s] = (counts[s] or 0) + 1 end
  for s, n in pairs(counts) do redis.call('HSET', refs, s, n) end
end
local function unref(sha)
  if not sha then return end
  if redis.call('HINCRBY', refs, sha, -1) <= 0 then
    redis.call('HDEL', refs, sha)
    redis.call('EXPIRE', blob_prefix .. sha, UNREF_TTL, 'NX')
  end
end
"#;

/// Reads one path. KEYS: index, epoch. ARGV: blob prefix, path.
/// Returns `{0, epoch_exists}` when the path is not indexed, `{1, sha}` when
/// its blob is gone, `{2, sha, content}` when found.
pub static LOOKUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local sha = redis.call('HGET', KEYS[1], ARGV[2])
if not sha then return {0, redis.call('EXISTS', KEYS[2])} end
local content = redis.call('GET', ARGV[1] .. sha)
if not content then return {1, sha} end
return {2, sha, content}
"#,
    )
});

/// Removes an index entry that has no PostgreSQL row at all, unless a write
/// touched the path since the caller looked. KEYS: index, revisions,
/// generation, changes. ARGV: stream max length, then pairs of path and the
/// revision observed (`''` when none). Returns how many entries were removed.
///
/// The dropped entries' blobs lose a reference (see [`APPLY`]); the blob
/// prefix is derived from the index key (`{p}:modules` → `{p}:blob:`).
pub static DROP_ORPHANS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local index, revs, genkey, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local blob_prefix = string.sub(index, 1, #index - #'modules') .. 'blob:'
local UNREF_TTL = {ttl}
{REFS_LUA}
local removed = 0
for i = 2, #ARGV, 2 do
  local path, seen = ARGV[i], ARGV[i+1]
  local cur = redis.call('HGET', revs, path) or ''
  local old = redis.call('HGET', index, path)
  if cur == seen and redis.call('HDEL', index, path) == 1 then
    unref(old)
    redis.call('HDEL', revs, path)
    local gen = redis.call('INCR', genkey)
    redis.call('XADD', changes, 'MAXLEN', '~', ARGV[1], '*', 'gen', gen, 'path', path, 'deleted', '1')
    removed = removed + 1
  end
end
return removed
"#,
        ttl = UNREFERENCED_BLOB_TTL_SECS,
    ))
});
