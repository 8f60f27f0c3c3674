--[[
  Recomputes the operation's status from its counters. When it becomes terminal: completedAt,
  the retention expiry (unless still accepting) and an event on `channel`.
  Returns status, becameTerminal.
]]
local function settle(key, now, retention, channel)
  local f = redis.call('HMGET', key, 'status', 'total', 'n_queued', 'n_signed', 'n_failed', 'n_canceled', 'cancelRequested', 'tenant')
  local status = f[1]
  local total, queued, signed, failed, canceled = tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6])
  if TERMINAL[status] then return status, false end
  local new
  if signed + failed + canceled == total then
    if f[7] == '1' or (canceled > 0 and canceled == total) then new = 'canceled'
    elseif signed == total then new = 'succeeded'
    elseif signed == 0 then new = 'failed'
    else new = 'partially_failed' end
  elseif queued == total then new = 'queued'
  else new = 'processing' end
  redis.call('HSET', key, 'status', new, 'updatedAt', now)
  redis.call('HINCRBY', key, 'rev', 1)
  if TERMINAL[new] then
    redis.call('HSET', key, 'completedAt', now)
    if redis.call('HGET', key, 'accepting') ~= '1' then redis.call('PEXPIRE', key, retention) end
    redis.call('PUBLISH', channel, cjson.encode({ opId = redis.call('HGET', key, 'id'), tenant = f[8], status = new }))
    return new, true
  end
  return new, false
end
