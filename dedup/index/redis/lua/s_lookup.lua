-- ARGV: ns, bands, rows, id ('' for none), handle, handle, ...
-- -> {own handle or false, #own, own members..., info or false per handle}
-- own: the handle of `id` if stored, and the members of a story named after it (the fresh-story check)
check_epoch(false)
local id = ARGV[4]
local out = {false, 0}
if id ~= '' then
  out[1] = handle_of(id)
  local own = redis.call('HKEYS', K_story(id))
  out[2] = #own
  for _, m in ipairs(own) do out[#out + 1] = m end
end
for i = 5, #ARGV do out[#out + 1] = info_get(ARGV[i]) end
return out
