-- ARGV: ns, bands, rows, story, id, id, ...
check_epoch(true)
local ids = {}
for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
begin_write()
set_story(ARGV[4], ids)
finish()
return 1
