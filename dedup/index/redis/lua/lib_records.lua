-- the parts of a record the scripts need; the layout constants (RECORD_*, HEADER_SIZE) come from
-- codec.LAYOUT through the prelude
local function rec(blob)
  local _, fl, day, nm, nt, nsh, nh, lid = struct.unpack(RECORD_HEAD, blob)
  local r = {}
  if bit.band(fl, RECORD_DATED) ~= 0 then r.day = day end
  r.m = string.sub(blob, HEADER_SIZE + 1, HEADER_SIZE + RECORD_MINHASH * nm)
  -- codec.signature_size
  r.sig_end = HEADER_SIZE + RECORD_MINHASH * nm + (RECORD_TERM_IDS + RECORD_TERM_WEIGHTS) * nt + RECORD_SHINGLES * nsh
  r.h = string.sub(blob, r.sig_end + 1, r.sig_end + RECORD_SENTENCE_HASHES * nh)
  local id_at = r.sig_end + RECORD_SENTENCE_HASHES * nh + 1
  r.id = string.sub(blob, id_at, id_at + lid - 1)
  return r
end

-- a record's publication day alone (nil: undated), without cutting out the parts rec() does
local function rec_day(blob)
  local _, fl, day = struct.unpack(RECORD_HEAD, blob)
  if bit.band(fl, RECORD_DATED) ~= 0 then return day end
  return nil
end
