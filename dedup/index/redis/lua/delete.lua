-- ARGV: ns, bands, rows, id -> {its handle (decimal), the old record}, false if absent
check_epoch(false)
local h = handle_get(ARGV[4])
if not h then return false end
begin_write()
local blob = del_article(ARGV[4])
finish()
return blob and {h, blob}
