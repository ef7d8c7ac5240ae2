-- Runs in a band group's slot: ARGV: group tag, 1, rows, op, (field, entry)...
-- 'get' -> each bucket's value (false: empty); 'add' -> each value before adding the entry (the entry's
-- handle is added once: adding again answers the value and changes nothing); 'del' -> 1 per field.
-- Records of the handles whose group this is ((handle, record) pairs, the handle in decimal; '' for
-- the record where none is given): 'rput' stores them, 'rget' answers them (false: absent), 'rdel' drops them.
local op = ARGV[4]
local out = {}
for i = 5, #ARGV, 2 do
  local f, e = ARGV[i], ARGV[i + 1]
  if op == 'rget' then
    out[#out + 1] = redis.call('GET', K_article(f))
  elseif op == 'rput' then
    redis.call('SET', K_article(f), e)
    out[#out + 1] = 1
  elseif op == 'rdel' then
    out[#out + 1] = redis.call('DEL', K_article(f))
  elseif op == 'get' then
    out[#out + 1] = bucket_get('b', f)
  elseif op == 'add' then
    local v = bucket_get('b', f)
    local there = false
    if v then
      local hb = string.sub(e, 1, 4)
      for j = 1, #v, 6 do if string.sub(v, j, j + 3) == hb then there = true; break end end
    end
    if not there then lh_count('b', bucket_add('b', f, e, v)) end
    out[#out + 1] = v
  else
    lh_count('b', bucket_remove('b', f, string.sub(e, 1, 4)))
    out[#out + 1] = 1
  end
end
lh_flush()
return out
