--[[
  Writes a new operation record and its expiry at once.
  KEYS[1] operation hash
  ARGV[1] ttl (ms), then field, value pairs (HSET in slices: Lua's unpack limit).
]]
local n = #ARGV
local i = 2
while i <= n do
  local j = math.min(i + 999, n)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
