-- luacheck settings for dedup/index/redis/lua: tests/test_lua.py checks each script as Redis runs it
-- (redis/scripts.py: the prelude, the helpers, the body).  Redis runs Lua 5.1 with these libraries as globals.
std = "lua51"
read_globals = {"redis", "KEYS", "ARGV", "cjson", "struct", "cmsgpack", "bit"}
max_line_length = 120
