--[[
  window_take(key, cost, seconds): adds cost to a fixed window's counter, created to expire with
  its window; returns the counter and the window's ms left. rate-limiter-flexible's own script
  (RateLimiterRedis), so the library's other calls on the same keys (penalty, reward) still apply.
]]
local function window_take(key, cost, seconds)
  redis.call('SET', key, 0, 'EX', seconds, 'NX')
  local consumed = redis.call('INCRBY', key, cost)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 then
    redis.call('EXPIRE', key, seconds)
    ttl = 1000 * seconds
  end
  return consumed, ttl
end
