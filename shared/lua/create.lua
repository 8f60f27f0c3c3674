--[[
  Writes a new operation record and its expiry at once, and lists it in its tenant's index.
  KEYS[1] operation hash  KEYS[2] tenant's index (sorted set: createdAt → opId)
  ARGV[1] ttl (ms)  ARGV[2] createdAt (ms)  ARGV[3] opId, then field, value pairs (HSET in slices:
  Lua's unpack limit).
]]
local n = #ARGV
local i = 4
while i <= n do
  local j = math.min(i + 999, n)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[3])
return 1
