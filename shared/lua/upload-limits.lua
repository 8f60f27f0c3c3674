--[[
  The per-tenant limits an upload passes before its body is read, in one round trip (the api's
  rate-limits.ts): the tenant's backlog, its requests window and its uploaded-bytes window. The
  windows are rate-limiter-flexible's fixed windows (includes/window.lua).
  KEYS[1] requests window  KEYS[2] uploaded-bytes window  KEYS[3] tenants' backlog hash
  ARGV[1] tenant  ARGV[2] requests quota  ARGV[3] requests window (s)  ARGV[4] bytes quota
  ARGV[5] bytes window (s)  ARGV[6] announced bytes  ARGV[7] backlog quota  (a quota of 0: no limit)
  Returns {outcome, a, b}: {'ok', requests consumed, requests window ms left};
  {'backlog', backlog, 0}; {'requests' | 'upload_bytes', consumed, window ms left}.
  A refused request is counted in the requests window (as a refused one always was); bytes refused
  are given back. The first upload that crosses the bytes quota passes.
]]
-- @include "window"

local backlogQuota = tonumber(ARGV[7])
if backlogQuota > 0 then
  local backlog = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') or 0
  if backlog + 1 > backlogQuota then return { 'backlog', backlog, 0 } end
end

local reqQuota = tonumber(ARGV[2])
local reqConsumed, reqTtl = 0, 0
if reqQuota > 0 then
  reqConsumed, reqTtl = window_take(KEYS[1], 1, tonumber(ARGV[3]))
  if reqConsumed > reqQuota then return { 'requests', reqConsumed, reqTtl } end
end

local bytesQuota = tonumber(ARGV[4])
if bytesQuota > 0 then
  local cost = tonumber(ARGV[6])
  local consumed, ttl = window_take(KEYS[2], cost, tonumber(ARGV[5]))
  if consumed > bytesQuota and consumed - cost >= bytesQuota then
    redis.call('DECRBY', KEYS[2], cost)
    return { 'upload_bytes', consumed, ttl }
  end
end
return { 'ok', reqConsumed, reqTtl }
