-- ARGV: ns, bands, rows, id, handle (decimal), its record -> {old record or false, todo...}, or
-- {false, 'moved'} when the id is stored under another handle now (read again and retry)
check_epoch(false)
local h = handle_get(ARGV[4])
if not h then return {false} end
if h ~= ARGV[5] then return {false, 'moved'} end
if ARGV[6] ~= '' then HINT = ARGV[6] end
begin_write()
local blob = del_article(ARGV[4])
finish()
return {blob, unpack(TODO)}
