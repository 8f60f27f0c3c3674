--[[
  Ends the "accepting" phase of a new operation: its jobs are enqueued, so the record no longer
  expires (or expires after retention when it already ended).
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash (its unfinished documents join it)
  ARGV[1] retention (ms)
  Returns 1, or 0 when the record is gone.
]]
-- @include "states"
-- @include "backlog"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'accepting')
local open = redis.call('HMGET', KEYS[1], 'n_queued', 'n_signing')
backlog_add(KEYS[1], KEYS[2], (tonumber(open[1]) or 0) + (tonumber(open[2]) or 0))
if TERMINAL[redis.call('HGET', KEYS[1], 'status')] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
else
  redis.call('PERSIST', KEYS[1])
end
return 1
