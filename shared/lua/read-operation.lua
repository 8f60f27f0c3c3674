--[[
  A status read in one round trip (the api's rate-limits.ts): the tenant's reads window, then the
  operation's record, whole or its head (what a long-poll checks before it waits).
  KEYS[1] reads window  KEYS[2] operation hash
  ARGV[1] reads quota (0: no limit)  ARGV[2] window (s)  ARGV[3] 'all' or 'head'
  Returns {'limited', consumed, window ms left} (the record is not read), or
  {'ok', consumed, window ms left, fields}: fields is HGETALL's flat list ('all') or id, tenant,
  status ('head'; false for a missing field).
]]
-- @include "window"

local quota = tonumber(ARGV[1])
local consumed, ttl = 0, 0
if quota > 0 then
  consumed, ttl = window_take(KEYS[1], 1, tonumber(ARGV[2]))
  if consumed > quota then return { 'limited', consumed, ttl } end
end
if ARGV[3] == 'head' then
  return { 'ok', consumed, ttl, redis.call('HMGET', KEYS[2], 'id', 'tenant', 'status') }
end
return { 'ok', consumed, ttl, redis.call('HGETALL', KEYS[2]) }
