"""The Lua every script of the Redis index starts with: key names, record parsing, linear-hashed
shards, the handle table and buckets by publication period, then (from :mod:`dedup.index.redis_lua_articles`)
article put/delete, story moves and candidate lookup.  The scripts themselves are in
:mod:`dedup.index.redis_lua`.

Kept in its own module because it is most of the Lua; each script is this
text followed by a short body, so Redis caches one compiled function per
script and the helpers cost no round trip.
"""

from __future__ import annotations

from .codec import HEADER_SIZE
from .redis_keys import LUA_KEY_HELPERS, PERIOD_DAYS
from .redis_lua_articles import ARTICLES

# Linear hashing: start with SHARDS0 shards per family and split one shard
# whenever the family holds more than LOAD fields per shard on average (and
# merge the last split back once it holds under LOAD / 4 per shard).  An
# unsplit shard holds up to ~2 x LOAD, so LOAD = 40 keeps shards under
# Redis's default hash-max-listpack-entries (128), where a hash is a compact
# listpack (~12 bytes per bucket entry) instead of a hash table (~70).
SHARDS0 = 64
LOAD = 40
# a publication period's bucket family starts with fewer shards: an index holds many periods, most of
# them small at first (see redis_keys.PERIOD_DAYS)
PERIOD_SHARDS0 = 8
NODAY = -(2**31)  # day of an undated article in the handle table
# handles per shard of the handle table 'i' (sharded by range): under hash-max-listpack-entries (128)
INFO_SPAN = 64

_TEMPLATE = LUA_KEY_HELPERS + r"""
local BANDS = tonumber(ARGV[2])
local ROWS = tonumber(ARGV[3])
local HDR = %(hdr)d
local S0 = %(s0)d
local SB0 = %(sb0)d
local LOAD = %(load)d
-- put counts its new bucket fields in steps of GROW (see there)
local GROW = %(load)d / 2

--@ records
-- the parts of a record the scripts need (layout: dedup/index/codec.py)
local function rec(blob)
  local _, fl, day, nm, nt, nsh, nh, lid = struct.unpack('<BBi4I4I4I4I4I4', blob)
  local r = {}
  if fl %% 2 == 1 then r.day = day end
  r.m = string.sub(blob, HDR + 1, HDR + 4 * nm)
  r.sig_end = HDR + 4 * (nm + nt) + 3 * nsh  -- codec.signature_size
  r.h = string.sub(blob, r.sig_end + 1, r.sig_end + 4 * nh)
  local id_at = r.sig_end + 4 * nh + 1
  r.id = string.sub(blob, id_at, id_at + lid - 1)
  return r
end

-- a record's publication day alone (nil: undated), without cutting out the parts rec() does
local function rec_day(blob)
  local _, fl, day = struct.unpack('<BBi4', blob)
  if fl %% 2 == 1 then return day end
  return nil
end

--@ lh
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
    local s0 = S0
    if string.byte(f, 2) == 58 then s0 = SB0 end  -- 'b:...', 'e:...'
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

-- prefix .. decimal digits of a non-negative integer i, as string.format('%%d', i) would write them,
-- without a C call (sprintf is the dearest part of naming a shard key); also used for numbers handed to
-- redis.call, which Redis would otherwise format with sprintf('%%.17g') (string arguments go as they are)
local DIG = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}
local function with_num(pre, i)
  if i < 10 then return pre .. DIG[i] end
  local a = i %% 10; i = (i - a) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[a] end
  local b = i %% 10; i = (i - b) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[b] .. DIG[a] end
  local c = i %% 10; i = (i - c) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[c] .. DIG[b] .. DIG[a] end
  local d = i %% 10; i = (i - d) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[d] .. DIG[c] .. DIG[b] .. DIG[a] end
  local e = i %% 10; i = (i - e) / 10
  if i < 10 then return pre .. DIG[i] .. DIG[e] .. DIG[d] .. DIG[c] .. DIG[b] .. DIG[a] end
  return pre .. string.format('%%d', ((((i * 10 + e) * 10 + d) * 10 + c) * 10 + b) * 10 + a)
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
  local i = h %% m
  if i < s.p then i = h %% (2 * m) end
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
  for i = 1, #bytes do h = (h * 31 + bytes[i]) %% 4294967296 end
  IDH[id] = h
  return h
end
-- field hash by family, for splitting (the others: fh)
local HASH = {h = idhash}

local function shard_id(id)
  local s = LH['h'] or lh('h')
  local h = idhash(id)
  local m = s.m
  local i = h %% m
  if i < s.p then i = h %% (2 * m) end
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
      if hash(f) %% (2 * m) ~= s.p then gone[#gone + 1] = f else stay[#stay + 1] = f end
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
        redis.call('HSET', K_LH, fam .. 'l', with_num('', s.l), fam .. 'p', with_num('', s.p), fam .. 'n', with_num('', s.n))
        if DEFER and s.n > LOAD * (s.m + s.p + 1) then OWED[#OWED + 1] = fam end
      end
      s.dirty = false
    end
  end
end

--@ handles
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
-- Sharded by range, ISPAN consecutive handles per shard ({ns}:i:<handle // ISPAN>), not hashed:
-- handles are given out in arrival order, so a new article writes the newest shard, and its candidates
-- (mostly recent articles) are in the newest shards too.  The shards an index touches then stay the same
-- few as it grows, where hashing spread those writes over every shard of the index.
local NODAY = %(noday)d
local ISPAN = %(ispan)d
local function shard_i(hb)
  local a, b, c, d = string.byte(hb, 1, 4)
  local h = a + b * 256 + c * 65536 + d * 16777216
  return with_num(P .. 'i:', (h - h %% ISPAN) / ISPAN)
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

--@ buckets
-- a bucket entry is the 4-byte handle + a 2-byte day tag, so FIND filters by the window
-- without reading anything per candidate: the day modulo 65535, 65535 when undated
local UNDATED = 65535
local function day_tag(day)
  if not day then return UNDATED end
  return day %% 65535
end

-- might a tag be within `window` days of `day` (nil: undated)?  Modular, so a day 179 years
-- away can pass: the client's verification checks the exact days again
local function tag_within(tag, day, window)
  if not day or tag == UNDATED or window >= 32767 then return true end
  local d = math.abs(tag - day_tag(day))
  return d <= window or 65535 - d <= window
end

-- Buckets are partitioned by publication period (PERIOD days of day tags): an article's entries go in the
-- family of its period, 'b:<period>' ('b:u' when undated), and it reads the periods within its window
-- (its own only, for most articles) and the undated family when there is one.  So a lookup reads the
-- shards of recent periods, a working set that stays the same size however many periods the index holds,
-- and no longer decodes the entries of older articles that share a bucket.  (The spread layout's band
-- groups keep one family, 'b', per group.)
local PERIOD = %(period)d
local function bfam(tag)
  if tag == UNDATED then return 'b:u' end
  return with_num('b:', (tag - tag %% PERIOD) / PERIOD)
end

-- An entry of a period's family is the 4-byte handle + one byte, the day's place in the period (255:
-- undated): the period gives the rest of the day tag.  The band groups of the spread layout keep one family,
-- 'b', whose entries need the whole tag: handle + 2 bytes.
local function entry_width(fam)
  if fam == 'b' then return 6 end
  return 5
end
local function period_entry(hb, tag)
  if tag == UNDATED then return hb .. '\255' end
  return hb .. string.char(tag %% PERIOD)
end
-- the day tag of a period family's entries is base + their byte (nil: the undated family)
local function period_base(fam)
  local p = tonumber(string.sub(fam, 3))
  return p and p * PERIOD
end

-- the families an article tagged `tag` reads within `window` days, its own first: nil for every one (an
-- undated article, or an unbounded window: undated articles are candidates of every article, and every
-- article is theirs).  The Python twin is redis_keys.read_families.
local function window_fams(tag, window)
  if tag == UNDATED or window >= 32767 then return nil end
  local own = bfam(tag)
  local out, seen = {own}, {[own] = true}
  local d = -window
  while d <= window do
    local t = (tag + d) %% 65535  -- day tags wrap after 65534
    local f = bfam(t)
    if not seen[f] then seen[f] = true; out[#out + 1] = f end
    d = d + math.min(PERIOD - t %% PERIOD, 65535 - t)  -- the next period's first day
  end
  if not seen['b:u'] then out[#out + 1] = 'b:u' end
  return out
end

-- every family of one kind ('b:' or 'e:') that holds anything (a family's state goes with its last field)
local function stored_fams(prefix)
  local out = {}
  local all = redis.call('HGETALL', K_LH)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == prefix and string.byte(f, #f) == 110 then  -- '<prefix><period>n'
      out[#out + 1] = string.sub(f, 1, -2)
    end
  end
  return out
end

-- the families to read: the article's own first (the one it is written to, even while empty), then those
-- of window_fams that hold anything
local function read_fams(tag, window)
  local own = bfam(tag)
  local want = window_fams(tag, window)
  if not want then
    want = {own}
    for _, f in ipairs(stored_fams('b:')) do
      if f ~= own then want[#want + 1] = f end
    end
  end
  for _, f in ipairs(want) do lh_want(f) end
  local out = {own}
  for j = 2, #want do
    if lh(want[j]).n > 0 then out[#out + 1] = want[j] end
  end
  return out
end

-- bucket values this script wrote (family -> field -> value, false once emptied): INGEST's fast path
-- takes the values FIND read, except where this script changed them since
local BV = {}
local function bv_of(fam)
  local t = BV[fam]
  if not t then t = {}; BV[fam] = t end
  return t
end

-- A bucket's value is stored in pieces of at most PIECE bytes (10 entries): field f, then
-- u16 j .. f for j = 1, 2, ... (a different length than any bucket field, and the same last 4
-- bytes, hence the same shard).  Every piece stays under hash-max-listpack-value (64 bytes), so
-- a popular bucket does not turn its whole shard into a hash table.
local PIECE = 60
local function piece_field(f, j)
  if j == 0 then return f end
  return struct.pack('<I2', j) .. f
end

-- the whole value of bucket f of family fam (false: empty)
local function bucket_get(fam, f)
  local k = shard(fam, f)
  local v = redis.call('HGET', k, f)
  if not v or #v < PIECE then return v end
  local parts, j = {v}, 1
  while true do
    local p = redis.call('HGET', k, piece_field(f, j))
    if not p then break end
    parts[#parts + 1] = p
    if #p < PIECE then break end
    j = j + 1
  end
  return table.concat(parts)
end

local function npieces(v)
  if not v then return 0 end
  return math.ceil(#v / PIECE)
end

-- bucket f goes from value old to new (false: empty); they agree before byte `from`.  Returns how many
-- fields the family gained (or lost, < 0), for the caller to hand to lh_count: one call for several
-- buckets (see put)
local function bucket_put(fam, f, old, new, from)
  local k = shard(fam, f)
  if new and #new <= PIECE and (not old or #old <= PIECE) then
    -- one piece before (or none) and after: most of an article's 32 bucket writes, without the piece
    -- arithmetic below (~2%% of the server's time)
    redis.call('HSET', k, f, new)
    bv_of(fam)[f] = new
    if not old then return 1 end
    return 0
  end
  local n_old, n_new = npieces(old), npieces(new)
  -- the piece holding byte `from` changed (an entry was appended or removed there), and so did every
  -- later one (shifted by an entry) but in rare coincidences, where writing it again is harmless
  if n_new == 1 then
    redis.call('HSET', k, f, new)
  else
    for j = math.floor((from - 1) / PIECE), n_new - 1 do
      redis.call('HSET', k, piece_field(f, j), string.sub(new, j * PIECE + 1, (j + 1) * PIECE))
    end
  end
  for j = n_new, n_old - 1 do redis.call('HDEL', k, piece_field(f, j)) end
  bv_of(fam)[f] = new
  return n_new - n_old
end

-- known: the field's current value when the caller just read it (false: absent), nil: read it;
-- hb: the bucket entry (handle + day, see period_entry).  Returns the change in the family's fields.
local function bucket_add(fam, f, hb, known)
  local v = known
  if v == nil then v = bucket_get(fam, f) end
  if v then return bucket_put(fam, f, v, v .. hb, #v + 1) end
  return bucket_put(fam, f, false, hb, 1)
end

-- returns the change in the family's fields
local function bucket_remove(fam, f, hb)
  local v = bucket_get(fam, f)
  if not v then return 0 end
  local keep, from = {}, nil
  local w = entry_width(fam)
  for j = 1, #v, w do
    if string.sub(v, j, j + 3) ~= hb then keep[#keep + 1] = string.sub(v, j, j + w - 1) elseif not from then from = j end
  end
  if not from then return 0 end
  if #keep == 0 then return bucket_put(fam, f, v, false, 1) end
  return bucket_put(fam, f, v, table.concat(keep), from)
end

""" % {"hdr": HEADER_SIZE, "s0": SHARDS0, "sb0": PERIOD_SHARDS0, "period": PERIOD_DAYS, "load": LOAD, "noday": NODAY,
       "ispan": INFO_SPAN}

# The text in sections (each starts at a '--@ name' line): the story index's scripts take them all; the
# spread layout's band script (redis_spread_lua.BAND) only the bucket machinery.  A script runs its
# whole prologue on every call (~1 us per 10 function definitions), and a band script is called 16 times per
# article.
_PARTS = _TEMPLATE.split("\n--@ ")
SECTIONS = {"head": _PARTS[0] + "\n", **{p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in _PARTS[1:]}}
HELPERS = "".join(SECTIONS.values()) + ARTICLES
BUCKET_HELPERS = SECTIONS["head"] + SECTIONS["lh"] + SECTIONS["buckets"]
