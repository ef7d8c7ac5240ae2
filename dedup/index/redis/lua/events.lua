-- ARGV: ns, bands, rows, 'k', then per article: id, n, its n event keys (hex), which replace those it held
--   -> articles written
--   or: ns, bands, rows, 'l', then pairs of linked ids -> links written
-- Only stored articles get keys or links: del_article removes them with the article, so none outlives it
-- (a key or link sent for an article deleted meanwhile is not written).
check_epoch(false)
local n, i = 0, 5
if ARGV[4] == 'k' then
  while i <= #ARGV do
    local id, c = ARGV[i], tonumber(ARGV[i + 1])
    if handle_exists(id) then
      drop_event_keys(id)
      local ek = K_evkeys(id)
      for j = i + 2, i + 1 + c do
        redis.call('HSET', K_evpost(ARGV[j]), id, '')
        redis.call('HSET', ek, ARGV[j], '')
      end
      n = n + 1
    end
    i = i + 2 + c
  end
else
  for j = 5, #ARGV - 1, 2 do
    local a, b = ARGV[j], ARGV[j + 1]
    if a ~= b and handle_exists(a) and handle_exists(b) then
      redis.call('HSET', K_evlinks(a), b, '')
      redis.call('HSET', K_evlinks(b), a, '')
      n = n + 1
    end
  end
end
return n
