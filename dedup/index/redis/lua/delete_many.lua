-- ARGV: ns, bands, rows, id, id, ... -> how many of them were stored (all are gone now).  Retention's
-- deletes, many per call: each story they leave with two members or more owes a re-split (K_SPLIT, see
-- del_article), which the client then writes once per story instead of once per deleted article
check_epoch(false)
local n = 0
for i = 4, #ARGV do
  if handle_get(ARGV[i]) then
    if n == 0 then begin_write() end
    del_article(ARGV[i])
    n = n + 1
  end
end
if n > 0 then finish() end
return n
