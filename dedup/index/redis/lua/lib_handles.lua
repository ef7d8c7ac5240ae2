-- The write version, the epoch check, bucket fields and the handle tables ('h': id -> handle, 'i': handle ->
-- day and story).

-- the namespace's write version ({ns}:meta field v): every write script moves it before its first
-- write, so INGEST can tell that nothing changed since FIND read (even after a script that failed half-way)
-- (check_epoch reads it with the epoch, in the same call, and begin_write keeps that copy current)
local V = nil
local function version()
  if not V then V = redis.call('HGET', KEYS[1], 'v') or '0' end
  return V
end
local function begin_write() V = tostring(redis.call('HINCRBY', KEYS[1], 'v', '1')) end

-- Every story-slot script starts with check_epoch(writes): {ns}:meta goes with the last article, and with
-- it the handle counter, the write version and the clock, which then start again.  A client that cached
-- handles (or a version, or a story list) of the namespace before it emptied would take the new ones for
-- the old, so it sends the epoch it knows (ARGV[1] = 'ns epoch'), and a script that finds another one
-- stops before anything is written.  The client claims the namespace again and redoes the call
-- (RedisIndex._claim).  A script that finds no meta passes when it only changes what it finds
-- (writes = false: reads, deletes, clearing todo entries): there is nothing, so it writes nothing, and
-- deleting an absent article twice does not bring the meta key back.  One that adds needs meta.
local function check_epoch(writes)
  local got = redis.call('HMGET', KEYS[1], 'epoch', 'v')
  local e = got[1]
  V = got[2] or '0'
  if e == EPOCH or (not e and not writes) then return end
  error({err = 'DEDUP-EPOCH namespace ' .. NS .. ' was emptied and claimed again since this client read it'
        .. ' (epoch ' .. (e or 'none') .. ', client ' .. (EPOCH == '' and 'none' or EPOCH) .. ')'})
end

-- set when this script removed what may have been the namespace's last article (or todo entry)
local EMPTIED = false

-- every write script ends with this: persist the shard state, and drop {ns}:meta once nothing else is left
local function finish()
  lh_flush()
  if EMPTIED and redis.call('EXISTS', K_COUNT) == 0 and redis.call('EXISTS', K_TODO) == 0 then
    redis.call('DEL', KEYS[1])
  end
end

-- the index's LSH shape: every story-slot script is called with it
local BANDS = tonumber(ARGV[2])
local ROWS = tonumber(ARGV[3])

-- bucket fields of a minhash: u16 band + the band's raw value (computed once per minhash and script)
local BF = {}
local function band_fields(m)
  local out = BF[m]
  if out then return out end
  out = {}
  local w = ROWS * 4
  for i = 0, BANDS - 1 do
    out[#out + 1] = struct.pack('<I2', i) .. string.sub(m, i * w + 1, (i + 1) * w)
  end
  BF[m] = out
  return out
end

-- the same fields as the client sends them (one string, the fields of bands 0, 1, ... back to back):
-- cutting them out is cheaper than building them from the minhash
local function split_fields(packed)
  local out = BF[packed]
  if out then return out end
  local w = 2 + ROWS * 4
  if #packed ~= BANDS * w then error('bucket fields: expected ' .. BANDS * w .. ' bytes, got ' .. #packed) end
  out = {}
  for i = 0, BANDS - 1 do out[i + 1] = string.sub(packed, i * w + 1, (i + 1) * w) end
  BF[packed] = out
  return out
end

-- handle info, family 'i': field = 4-byte handle, value = i32 day (NODAY: undated) .. story id
-- ('' until the article joins a story): what FIND needs per candidate, without reading its record.
-- Sharded by range, INFO_SPAN consecutive handles per shard ({ns}:i:<handle // INFO_SPAN>), not hashed:
-- handles are given out in arrival order, so a new article writes the newest shard, and its candidates
-- (mostly recent articles) are in the newest shards too.  The shards an index touches then stay the same
-- few as it grows, where hashing spread those writes over every shard of the index.
local function shard_i(hb)
  local a, b, c, d = string.byte(hb, 1, 4)
  local h = a + b * 256 + c * 65536 + d * 16777216
  return with_num(P .. 'i:', (h - h % INFO_SPAN) / INFO_SPAN)
end
local function info_get(hb) return redis.call('HGET', shard_i(hb), hb) end
local function info_day(v)
  local d = struct.unpack('<i4', v)
  if d == NODAY then return nil end
  return d
end
local function info_story(v) return string.sub(v, 5) end
-- the id table: article id -> handle (decimal)
local function handle_get(id) return redis.call('HGET', shard_id(id), id) end
local function handle_exists(id) return redis.call('HEXISTS', shard_id(id), id) == 1 end
local function handle_set(id, hs)
  if redis.call('HSET', shard_id(id), id, hs) == 1 then lh_count('h', 1) end
end
local function handle_del(id)
  if redis.call('HDEL', shard_id(id), id) == 1 then lh_count('h', -1) end
end
local function handle_of(id)
  local h = handle_get(id)
  if not h then return false end
  return struct.pack('<I4', tonumber(h))
end
