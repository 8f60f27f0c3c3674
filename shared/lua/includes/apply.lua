--[[
  apply(key, backlogKey, allowed, u, now): applies one update to one document of the operation
  hash `key`, if `allowed[from][to]` (a table generated from shared/operations/states.ts: ALLOWED
  for workers and cancel, RETRY_ALLOWED for a retry).
  u: { docId, to, claim?, error?, signed? }. A move out of `signing` that carries a claim id is
  refused when the document was re-claimed since (another worker owns it now). The same claim's
  end applied again changes nothing and is reported applied.
  A document that ends leaves its tenant's backlog `backlogKey`; one that is retried joins it again.
  Returns ok, status (the new status, or the one that refused the move).
]]
local ENDED = { signed = true, failed = true, canceled = true }
local function apply(key, backlogkey, allowed, u, now)
  local raw = redis.call('HGET', key, 'doc:' .. u.docId)
  if not raw then return false, 'missing' end
  local d = cjson.decode(raw)
  local from = d.status
  -- The same claim's end applied again (its answer was lost and the command resent, or recorded
  -- again): already done, reported applied so that the claim keeps the result its record points at.
  if from == u.to and ENDED[from] and u.claim and d.claim == u.claim then return true, from end
  if not (allowed[from] and allowed[from][u.to]) then return false, from end
  if from == 'signing' and u.to ~= 'signing' and u.claim and d.claim and u.claim ~= d.claim then return false, from end
  d.status = u.to
  d.updatedAt = now
  if u.to == 'signing' then
    d.attempts = (d.attempts or 0) + 1
    d.claim = u.claim
  elseif u.to == 'queued' then
    d.claim = nil
    if ENDED[from] then d.error = nil end
  end
  if u.error then d.error = u.error end
  if u.signed then u.signed.signedAt = now; d.signed = u.signed end
  redis.call('HSET', key, 'doc:' .. u.docId, cjson.encode(d))
  -- Every change of the record counts its revision (lua/read-operation.lua).
  redis.call('HINCRBY', key, 'rev', 1)
  redis.call('HINCRBY', key, 'n_' .. from, -1)
  redis.call('HINCRBY', key, 'n_' .. u.to, 1)
  if ENDED[u.to] and not ENDED[from] then backlog_add(key, backlogkey, -1) end
  if ENDED[from] and not ENDED[u.to] then backlog_add(key, backlogkey, 1) end
  return true, u.to
end
