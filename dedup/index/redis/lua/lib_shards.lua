-- linear hashing of the families 'b:<period>' (buckets of one publication period; 'b' in a band group's
-- slot), 'e:<period>' (sentence counts of one period) and 'h' (article id -> handle).
-- The state of every family a script will use is read at the first use of any: one HMGET (lh_want names
-- the families to read with it).
local LH = {}
local LH_WANT = {}
local function lh_want(fam)
  if not LH[fam] then LH_WANT[#LH_WANT + 1] = fam end
end
local function lh(fam)
  local s = LH[fam]
  if s then return s end
  local fams, seen = {}, {}
  for _, f in ipairs({fam, 'h', unpack(LH_WANT)}) do
    if not LH[f] and not seen[f] then seen[f] = true; fams[#fams + 1] = f end
  end
  LH_WANT = {}
  local args = {}
  for _, f in ipairs(fams) do args[#args + 1] = f .. 'l'; args[#args + 1] = f .. 'p'; args[#args + 1] = f .. 'n' end
  local v = redis.call('HMGET', K_LH, unpack(args))
  for j, f in ipairs(fams) do
    local l = tonumber(v[3 * j - 2]) or 0
    -- a period's family starts small (there are many); m: shards before the split point of this level
    local s0 = SHARDS0
    if string.byte(f, 2) == 58 then s0 = PERIOD_SHARDS0 end  -- 'b:...', 'e:...'
    LH[f] = {l = l, p = tonumber(v[3 * j - 1]) or 0, n = tonumber(v[3 * j]) or 0, dirty = false,
             pre = P .. f .. ':', m = s0 * 2 ^ l, keys = {}}
  end
  return LH[fam]
end

-- a field's hash: its last 4 bytes, little-endian (a uniform minhash or sentence hash)
local function fh(f)
  local a, b, c, d = string.byte(f, #f - 3, #f)
  return a + b * 256 + c * 65536 + d * 16777216
end

-- prefix .. decimal digits of a non-negative integer i, as string.format('%d', i) would write them,
-- without a C call (sprintf is the dearest part of naming a shard key); also used for numbers handed to
-- redis.call, which Redis would otherwise format with sprintf('%.17g') (string arguments go as they are)
local DIG = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}
local function with_num(pre, i)
  if i < 10 then return pre .. DIG[i] end
  local a = i % 10; i = (i - a) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[a] end
  local b = i % 10; i = (i - b) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[b] .. DIG[a] end
  local c = i % 10; i = (i - c) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[c] .. DIG[b] .. DIG[a] end
  local d = i % 10; i = (i - d) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[d] .. DIG[c] .. DIG[b] .. DIG[a] end
  local e = i % 10; i = (i - e) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[e] .. DIG[d] .. DIG[c] .. DIG[b] .. DIG[a] end
  return pre .. string.format('%d', ((((i * 10 + e) * 10 + d) * 10 + c) * 10 + b) * 10 + a)
end

-- the shard key of field f of family fam; kept per family until its next split or merge (s.keys): FIND
-- reads an article's 32 buckets and the write that follows writes the same ones
local function shard(fam, f)
  local s = LH[fam] or lh(fam)
  local k = s.keys[f]
  if k then return k end
  local a, b, c, d = string.byte(f, #f - 3, #f)
  local h = a + b * 256 + c * 65536 + d * 16777216
  local m = s.m
  local i = h % m
  if i < s.p then i = h % (2 * m) end
  k = with_num(s.pre, i)
  s.keys[f] = k
  return k
end

-- The id table, family 'h' (article id -> handle), is sharded by a hash of the id: ids are not uniform
-- in their last bytes as bucket fields are.  31 is odd, so every byte of the id reaches the low bits
-- that pick a shard.  Computed once per id and script.
local IDH = {}
local function idhash(id)
  local h = IDH[id]
  if h then return h end
  h = 0
  local bytes = {string.byte(id, 1, -1)}
  for i = 1, #bytes do h = (h * 31 + bytes[i]) % 4294967296 end
  IDH[id] = h
  return h
end
-- field hash by family, for splitting (the others: fh)
local HASH = {h = idhash}

local function shard_id(id)
  local s = LH['h'] or lh('h')
  local h = idhash(id)
  local m = s.m
  local i = h % m
  if i < s.p then i = h % (2 * m) end
  return with_num(s.pre, i)
end

-- Deferred splits.  A split (read a shard, move about half of it to a new one) is upkeep: the fields
-- stay where the state (level, split point) says they are, split or not.  A streamed article's FIND
-- (modes 3d and 4d) sets DEFER: it splits only families over HARD fields per shard, and answers those
-- over LOAD (OWED, filled by lh_flush); the client sends MAINTAIN for them as soon as it has the answer,
-- without waiting for it, so the server splits while the client prepares its next article (splits
-- were ~27 us of a streamed article's ~175 us on the server).  A MAINTAIN that is never sent (the
-- client stopped) leaves the family over LOAD but under HARD, and the next write to it owes it again.
local DEFER = false
local OWED = {}
local HARD = LOAD + LOAD / 4

-- split shards of family fam until it holds at most `limit` fields per shard
local function lh_split(fam, s, limit)
  local hash = HASH[fam] or fh
  while s.n > limit * (s.m + s.p) do
    local m = s.m
    local src, dst = K_shard(fam, s.p), K_shard(fam, s.p + m)
    -- the new shard is a copy of the old one, and each drops the fields that belong to the other: COPY
    -- duplicates the listpack in one piece, where reading every value and writing half of them again
    -- field by field took a quarter longer (38 vs 29 us for a shard of 70 fields)
    local all = redis.call('HKEYS', src)
    local stay, gone = {}, {}
    for i = 1, #all do
      local f = all[i]
      if hash(f) % (2 * m) ~= s.p then gone[#gone + 1] = f else stay[#stay + 1] = f end
    end
    if #stay == 0 and #gone > 0 then
      redis.call('RENAME', src, dst)
    elseif #gone > 0 then
      redis.call('COPY', src, dst, 'REPLACE')
      redis.call('HDEL', src, unpack(gone))
      redis.call('HDEL', dst, unpack(stay))
    end
    s.p = s.p + 1
    if s.p == m then s.l = s.l + 1; s.p = 0; s.m = 2 * m end
    s.keys = {}
    s.dirty = true
  end
end

-- one field more (+1) or less (-1) in a family; splits shards as it grows
local function lh_count(fam, delta)
  if delta == 0 then return end
  local s = lh(fam)
  s.n = s.n + delta
  s.dirty = true
  if delta > 0 then lh_split(fam, s, DEFER and HARD or LOAD) end
  -- and undoes the last split whenever the family falls under a quarter of that load (well below where
  -- it would split again), so mass deletion leaves fewer, fuller shards rather than many near-empty ones
  while delta < 0 and (s.l > 0 or s.p > 0) and 4 * s.n < LOAD * (s.m + s.p) do
    if s.p == 0 then s.l = s.l - 1; s.m = s.m / 2; s.p = s.m end
    s.p = s.p - 1
    s.keys = {}
    local src = K_shard(fam, s.p + s.m)
    local all = redis.call('HGETALL', src)
    if #all > 0 then
      redis.call('HSET', K_shard(fam, s.p), unpack(all))
      redis.call('DEL', src)
    end
  end
end

-- every write script ends with this: persist the shard state (dropped when a family empties)
local function lh_flush()
  for fam, s in pairs(LH) do
    if s.dirty then
      if s.n <= 0 then
        redis.call('HDEL', K_LH, fam .. 'l', fam .. 'p', fam .. 'n')
      else
        redis.call('HSET', K_LH, fam .. 'l', with_num('', s.l), fam .. 'p', with_num('', s.p),
                   fam .. 'n', with_num('', s.n))
        if DEFER and s.n > LOAD * (s.m + s.p + 1) then OWED[#OWED + 1] = fam end
      end
      s.dirty = false
    end
  end
end
