--[[
  Writes a new operation record and its expiry at once, and lists it in its tenant's index.
  KEYS[1] operation hash  KEYS[2] tenant's index (sorted set: createdAt → opId)
  ARGV[1] ttl (ms)  ARGV[2] createdAt (ms)  ARGV[3] opId, then field, value pairs (HSET in slices:
  Lua's unpack limit). The field accepting_at is Redis's own clock now (ms): accepted.lua measures
  its commit window from it.
]]
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local n = #ARGV
local i = 4
while i <= n do
  local j = math.min(i + 999, n)
  if i == 4 then
    redis.call('HSET', KEYS[1], 'accepting_at', now, unpack(ARGV, i, j))
  else
    redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  end
  i = j + 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[3])
return 1
