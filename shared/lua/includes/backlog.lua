--[[
  backlog_add(opKey, backlogKey, n): moves n (negative: documents that ended) of an accepted
  operation's documents in or out of its tenant's backlog (shared/scheduling/tenant-backlog.ts). Documents of
  an operation still accepting are never counted, so a submission undone half-way leaves the count exact.
]]
local function backlog_add(opkey, backlogkey, n)
  if n == 0 or redis.call('HEXISTS', opkey, 'accepting') == 1 then return end
  local tenant = redis.call('HGET', opkey, 'tenant')
  if not tenant then return end
  if redis.call('HINCRBY', backlogkey, tenant, n) <= 0 then redis.call('HDEL', backlogkey, tenant) end
end
