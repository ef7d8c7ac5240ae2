-- ARGV: ns, bands, rows, 4-byte sentence hash, ... -> counts (each the sum over the publication periods'
-- families, see efam)
check_epoch(false)
local fams = stored_fams('e:')
for _, fam in ipairs(fams) do lh_want(fam) end
local out = {}
for i = 4, #ARGV do
  local f, n = ARGV[i], 0
  for _, fam in ipairs(fams) do n = n + tonumber(redis.call('HGET', shard(fam, f), f) or 0) end
  out[#out + 1] = n
end
return out
