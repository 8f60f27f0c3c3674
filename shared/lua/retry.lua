--[[
  Re-queues failed documents of an operation (the caller chose which and checked their uploads).
  The operation is no longer terminal: it stops expiring and ends again, with a new webhook round.
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash (re-queued documents join it again)
  ARGV[1] now (ms)  ARGV[2] retention (ms)  ARGV[3] event channel  ARGV[4] document ids (JSON array)
  Returns JSON { status, applied, round }.
]]
-- @include "states"
-- @include "settle"
-- @include "backlog"
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({ status = 'missing', applied = {}, round = 0 }) end
local now = tonumber(ARGV[1])
local applied = {}
for _, id in ipairs(cjson.decode(ARGV[4])) do
  local raw = redis.call('HGET', KEYS[1], 'doc:' .. id)
  if raw then
    local d = cjson.decode(raw)
    if d.status == 'failed' then
      d.status = 'queued'
      d.error = nil
      d.claim = nil
      d.updatedAt = now
      redis.call('HSET', KEYS[1], 'doc:' .. id, cjson.encode(d))
      redis.call('HINCRBY', KEYS[1], 'n_failed', -1)
      redis.call('HINCRBY', KEYS[1], 'n_queued', 1)
      table.insert(applied, id)
    end
  end
end
local round = tonumber(redis.call('HGET', KEYS[1], 'retries') or '0')
if #applied > 0 then
  round = redis.call('HINCRBY', KEYS[1], 'retries', 1)
  backlog_add(KEYS[1], KEYS[2], #applied)
  redis.call('HDEL', KEYS[1], 'completedAt')
  redis.call('HSET', KEYS[1], 'status', 'processing')
  redis.call('PERSIST', KEYS[1])
  settle(KEYS[1], now, tonumber(ARGV[2]), ARGV[3])
end
return cjson.encode({ status = redis.call('HGET', KEYS[1], 'status'), applied = applied, round = round })
