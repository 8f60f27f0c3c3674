--[[
  transition_op(key, backlogkey, now, retention, channel, updates): transition.lua's work on one
  operation hash `key`: applies `updates` (a decoded JSON array) and recomputes the status.
  Returns the answer as a table { status, applied, rejected, becameTerminal, webhook }.
]]
-- @include "states"
-- @include "backlog"
-- @include "apply"
-- @include "settle"
local function transition_op(key, backlogkey, now, retention, channel, updates)
  if redis.call('EXISTS', key) == 0 then return { status = 'missing', applied = {}, rejected = {}, becameTerminal = false } end
  local applied, rejected = {}, {}
  -- A submission not yet committed by the api: nothing is claimed (the worker asks again later).
  local accepting = redis.call('HGET', key, 'accepting') == '1'
  for _, u in ipairs(updates) do
    local ok, st
    if accepting and u.to == 'signing' then ok, st = false, 'accepting' else ok, st = apply(key, backlogkey, ALLOWED, u, now) end
    if ok then table.insert(applied, u.docId) else table.insert(rejected, { docId = u.docId, status = st }) end
  end
  local status, became = settle(key, now, retention, channel)
  return { status = status, applied = applied, rejected = rejected, becameTerminal = became, webhook = redis.call('HEXISTS', key, 'webhookUrl') == 1 }
end
