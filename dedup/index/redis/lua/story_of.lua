-- ARGV: ns, bands, rows, id, id, ... -> story of each ('' where absent or in no story)
check_epoch(false)
local out = {}
for i = 4, #ARGV do
  local hb = handle_of(ARGV[i])
  local v = hb and info_get(hb)
  out[#out + 1] = v and info_story(v) or ''
end
return out
