--[[
  Moves documents of one operation and recomputes its status, atomically.
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash
  ARGV[1] now (ms)  ARGV[2] retention (ms)  ARGV[3] event channel  ARGV[4] updates (JSON array)
  Returns JSON { status, applied, rejected, becameTerminal, webhook }.
]]
-- @include "states"
-- @include "backlog"
-- @include "apply"
-- @include "settle"
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({ status = 'missing', applied = {}, rejected = {}, becameTerminal = false }) end
local now, retention, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local updates = cjson.decode(ARGV[4])
local applied, rejected = {}, {}
-- A submission not yet committed by the api: nothing is claimed (the worker asks again later).
local accepting = redis.call('HGET', KEYS[1], 'accepting') == '1'
for _, u in ipairs(updates) do
  local ok, st
  if accepting and u.to == 'signing' then ok, st = false, 'accepting' else ok, st = apply(KEYS[1], KEYS[2], ALLOWED, u, now) end
  if ok then table.insert(applied, u.docId) else table.insert(rejected, { docId = u.docId, status = st }) end
end
local status, became = settle(KEYS[1], now, retention, channel)
return cjson.encode({ status = status, applied = applied, rejected = rejected, becameTerminal = became, webhook = redis.call('HEXISTS', KEYS[1], 'webhookUrl') == 1 })
