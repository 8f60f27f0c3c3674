--[[
  Moves documents of one operation and recomputes its status, atomically.
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash
  ARGV[1] now (ms)  ARGV[2] retention (ms)  ARGV[3] event channel  ARGV[4] updates (JSON array)
  Returns JSON { status, applied, rejected, becameTerminal, webhook }.
]]
-- @include "transition-op"
return cjson.encode(transition_op(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], cjson.decode(ARGV[4])))
