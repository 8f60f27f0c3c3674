--[[
  Cancels every queued document of an operation (documents being signed finish).
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash
  ARGV[1] now (ms)  ARGV[2] retention (ms)  ARGV[3] event channel  ARGV[4] error message
  Returns JSON { status, applied, rejected, becameTerminal, webhook }.
]]
-- @include "states"
-- @include "backlog"
-- @include "apply"
-- @include "settle"
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({ status = 'missing', applied = {}, rejected = {}, becameTerminal = false }) end
local now, retention, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local status = redis.call('HGET', KEYS[1], 'status')
if TERMINAL[status] then
  return cjson.encode({ status = status, applied = {}, rejected = {}, becameTerminal = false })
end
local applied = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 4) == 'doc:' then
    local d = cjson.decode(all[i + 1])
    if d.status == 'queued' then
      local ok = apply(KEYS[1], KEYS[2], ALLOWED, { docId = d.id, to = 'canceled', error = { code = 'CANCELED', message = ARGV[4] } }, now)
      if ok then table.insert(applied, d.id) end
    end
  end
end
if #applied > 0 then
  redis.call('HSET', KEYS[1], 'cancelRequested', '1')
  redis.call('HINCRBY', KEYS[1], 'rev', 1)
end
local st, became = settle(KEYS[1], now, retention, channel)
return cjson.encode({ status = st, applied = applied, rejected = {}, becameTerminal = became, webhook = redis.call('HEXISTS', KEYS[1], 'webhookUrl') == 1 })
