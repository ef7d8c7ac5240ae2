-- ARGV: ns, bands, rows, id, id, ... -> handle of each (decimal; false where absent)
check_epoch(false)
local out = {}
for i = 4, #ARGV do out[#out + 1] = handle_get(ARGV[i]) end
return out
