-- ARGV: ns, bands, rows, window, count, then per article:
--       id, record, fields, story, is_new, nmerged, merged..., version, buckets, ncand, (handle, story-or-'')...
-- Writes the articles in order.  Before each one it re-checks what the client
-- decided on and stops at the first that changed.  When the write version is
-- still the one FIND answered, nothing was written since that read but this
-- call's own articles, which the client decided with, so there is nothing to
-- re-check, and the buckets are what FIND read (updated by this call's own
-- writes): no bucket read at all.  Otherwise: the buckets must hold what FIND saw plus
-- only articles this call wrote, the candidates must still be in the stories
-- the client assumed (after this call's own moves), and a new story id must
-- still be free.  Returns {articles written, 'ok' | 'conflict' | 'exists', the write version before
-- this call, handles of the written articles...}; the client reads and decides the rest again.
-- (That version tells a pipelined bulk load whether anything but this call wrote between its next
-- chunk's FIND, sent just before this call, and that chunk's INGEST: see _Bulk in slot.py.)
-- Comparing the buckets' handles instead of re-reading candidates keeps the
-- re-check to the 32 bucket reads, without fetching any record.
check_epoch(true)
local window = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local v0 = version()
begin_write()
local i = 6
local mine, written = {}, {}
for done = 0, count - 1 do
  local id, blob, packed, story, is_new = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4] == '1'
  i = i + 5
  local nmerged = tonumber(ARGV[i]); local merged = {}
  for j = 1, nmerged do merged[j] = ARGV[i + j] end
  i = i + nmerged + 1
  local seen_version, buckets = ARGV[i], ARGV[i + 1]
  i = i + 2
  local ncand = tonumber(ARGV[i]); local expected = {}
  for j = 0, ncand - 1 do expected[ARGV[i + 1 + 2 * j]] = ARGV[i + 2 + 2 * j] end
  i = i + 2 * ncand + 1

  local tag = day_tag(rec_day(blob))
  want_write_fams(tag)
  if handle_exists(id) then finish(); return {done, 'exists', v0, unpack(written)} end
  local fields = split_fields(packed)
  local seen, others = unpack_vals(fields, buckets)
  local vals = {}
  if seen_version == v0 then
    local bv = bv_of(bfam(tag))
    for _, f in ipairs(fields) do
      local w = bv[f]
      if w == nil then w = seen[f] end
      vals[f] = w
    end
  else
    local fams = read_fams(tag, window)
    vals = bucket_values(fams[1], fields)
    local ok = digest(handles_in(fields, vals), mine) == digest(handles_in(fields, seen), {})
      and others_digest(fams, fields, mine) == others
    if ok then
      for hb, want in pairs(expected) do
        local v = info_get(hb)
        if not v or info_story(v) ~= want then ok = false; break end
      end
    end
    if ok and is_new and redis.call('EXISTS', K_story(story)) == 1 then ok = false end
    if not ok then finish(); return {done, 'conflict', v0, unpack(written)} end
  end

  local hb, info = put(id, blob, vals, true, story, fields)
  mine[hb] = true
  written[#written + 1] = hb
  join_story(id, hb, info, story, merged)
end
finish()
return {count, 'ok', v0, unpack(written)}
