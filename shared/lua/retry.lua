--[[
  Re-queues failed documents of an operation (the caller chose which and checked their uploads),
  each through the state table's retry moves (RETRY_ALLOWED: failed -> queued).
  The operation is no longer terminal: it stops expiring and ends again, with a new webhook round.
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash (re-queued documents join it again)
  ARGV[1] now (ms)  ARGV[2] retention (ms)  ARGV[3] event channel  ARGV[4] document ids (JSON array)
  Returns JSON { status, applied, round }.
]]
-- @include "states"
-- @include "settle"
-- @include "backlog"
-- @include "apply"
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({ status = 'missing', applied = {}, round = 0 }) end
local now = tonumber(ARGV[1])
local applied = {}
for _, id in ipairs(cjson.decode(ARGV[4])) do
  if apply(KEYS[1], KEYS[2], RETRY_ALLOWED, { docId = id, to = 'queued' }, now) then table.insert(applied, id) end
end
local round = tonumber(redis.call('HGET', KEYS[1], 'retries') or '0')
if #applied > 0 then
  round = redis.call('HINCRBY', KEYS[1], 'retries', 1)
  redis.call('HDEL', KEYS[1], 'completedAt')
  redis.call('HSET', KEYS[1], 'status', 'processing')
  redis.call('HINCRBY', KEYS[1], 'rev', 1)
  redis.call('PERSIST', KEYS[1])
  settle(KEYS[1], now, tonumber(ARGV[2]), ARGV[3])
end
return cjson.encode({ status = redis.call('HGET', KEYS[1], 'status'), applied = applied, round = round })
