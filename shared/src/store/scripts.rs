//! Lua scripts of the module store. A script runs atomically in Redis, so one
//! call applies a batch of mutations (blob, index, revision, generation,
//! change record) with no interleaving and in one round trip.

use std::sync::LazyLock;

use redis::Script;

/// Applies mutations in order. KEYS: index, revisions, generation, changes, id.
/// ARGV: blob prefix, stream max length, then groups of five:
/// op (`put` | `del`), path, revision, sha256, content (empty for `del`).
/// A blob is always written (content-addressed, so always correct); the index
/// changes only when the revision is newer than the one last applied there.
/// Returns `{store id, generation}` after the batch. The store id is created
/// on first use (from the server clock), so after Redis lost its data the
/// generation restarts under a new id and no reader mistakes it for the old.
pub static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local index, revs, genkey, changes, idkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local blob_prefix, maxlen = ARGV[1], ARGV[2]
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
    if op == 'put' then
      if redis.call('HGET', index, path) ~= sha then
        redis.call('HSET', index, path, sha)
        local gen = redis.call('INCR', genkey)
        redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*', 'gen', gen, 'path', path, 'sha256', sha)
      end
    elseif redis.call('HDEL', index, path) == 1 then
      local gen = redis.call('INCR', genkey)
      redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*', 'gen', gen, 'path', path, 'deleted', '1')
    end
  end
end
return {id, tonumber(redis.call('GET', genkey) or '0')}
"#,
    )
});

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
pub static DROP_ORPHANS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local index, revs, genkey, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local removed = 0
for i = 2, #ARGV, 2 do
  local path, seen = ARGV[i], ARGV[i+1]
  local cur = redis.call('HGET', revs, path) or ''
  if cur == seen and redis.call('HDEL', index, path) == 1 then
    redis.call('HDEL', revs, path)
    local gen = redis.call('INCR', genkey)
    redis.call('XADD', changes, 'MAXLEN', '~', ARGV[1], '*', 'gen', gen, 'path', path, 'deleted', '1')
    removed = removed + 1
  end
end
return removed
"#,
    )
});
