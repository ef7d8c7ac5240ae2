-- ARGV: ns, bands, rows, id, id, ... -> {handle (decimal), record} of each (false where absent)
check_epoch(false)
local out = {}
for i = 4, #ARGV do out[#out + 1] = record_of(ARGV[i]) end
return out
