--[[
  transition.lua for many operations in one call (a batch's claims and outcomes), each operation
  on its own as there (atomic per operation, not across them).
  KEYS[1] tenants' backlog hash  KEYS[2..] operation hashes
  ARGV[1] now (ms)  ARGV[2] retention (ms)  ARGV[3] event channel
  ARGV[4] JSON array: at i, the updates (JSON array) of KEYS[i + 1]
  Returns a JSON array: at i, transition.lua's answer for KEYS[i + 1].
]]
-- @include "transition-op"
local now, retention, channel = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out = {}
for i, updates in ipairs(cjson.decode(ARGV[4])) do out[i] = transition_op(KEYS[i + 1], KEYS[1], now, retention, channel, updates) end
return cjson.encode(out)
