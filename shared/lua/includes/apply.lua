--[[
  Applies one update to one document of the operation hash `key`.
  u: { docId, to, claim?, error?, signed? }. A move out of `signing` that carries a claim id is
  refused when the document was re-claimed since (another worker owns it now).
  A document that ends leaves its tenant's backlog (KEYS[2] of the calling script).
  Returns ok, status (the new status, or the one that refused the move).
]]
local function apply(key, u, now)
  local raw = redis.call('HGET', key, 'doc:' .. u.docId)
  if not raw then return false, 'missing' end
  local d = cjson.decode(raw)
  local from = d.status
  if not (ALLOWED[from] and ALLOWED[from][u.to]) then return false, from end
  if from == 'signing' and u.to ~= 'signing' and u.claim and d.claim and u.claim ~= d.claim then return false, from end
  d.status = u.to
  d.updatedAt = now
  if u.to == 'signing' then
    d.attempts = (d.attempts or 0) + 1
    d.claim = u.claim
  elseif u.to == 'queued' then
    d.claim = nil
  end
  if u.error then d.error = u.error end
  if u.signed then u.signed.signedAt = now; d.signed = u.signed end
  redis.call('HSET', key, 'doc:' .. u.docId, cjson.encode(d))
  redis.call('HINCRBY', key, 'n_' .. from, -1)
  redis.call('HINCRBY', key, 'n_' .. u.to, 1)
  if u.to == 'signed' or u.to == 'failed' or u.to == 'canceled' then backlog_add(key, KEYS[2], -1) end
  return true, u.to
end
