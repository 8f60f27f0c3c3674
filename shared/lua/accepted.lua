--[[
  Ends the "accepting" phase of a new operation (the commit): its jobs are enqueued, so the record
  no longer expires (or expires after retention when it already ended), and the upload's
  Idempotency-Key, if any, records its 202 in the same step.
  A commit that runs too late is refused and changes nothing: its api has answered 503 by then
  (its command timed out while Redis was hung), so the submission must not stand.
  KEYS[1] operation hash  KEYS[2] tenants' backlog hash (its unfinished documents join it)
  KEYS[3] the Idempotency-Key's record (any key when ARGV[3] is '')
  KEYS[4..] the jobs' hashes, when the commit is sent in the same pipeline as the jobs' adds: a
  commit that finds one missing (its add failed) is refused, -2, and changes nothing
  ARGV[1] retention (ms)  ARGV[2] the latest commit, in ms after the record's accepting_at (Redis's
  clock at create; '' for no limit)  ARGV[3] the key's completed record ('' for none)  ARGV[4] its ttl (ms)
  Returns 1 (committed, or already was), 0 when the record is gone, -1 when too late, -2 when a
  job is missing (nothing done in either case).
]]
-- @include "states"
-- @include "backlog"
-- accepting, accepting_at, n_queued, n_signing, status (every record has a status: none, no record)
local h = redis.call('HMGET', KEYS[1], 'accepting', 'accepting_at', 'n_queued', 'n_signing', 'status')
if not h[5] then return 0 end
if h[1] ~= '1' then return 1 end
for i = 4, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -2 end
end
local since = tonumber(h[2])
if since and ARGV[2] ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - since > tonumber(ARGV[2]) then return -1 end
end
redis.call('HDEL', KEYS[1], 'accepting', 'accepting_at')
redis.call('HINCRBY', KEYS[1], 'rev', 1)
backlog_add(KEYS[1], KEYS[2], (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0))
if TERMINAL[h[5]] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
else
  redis.call('PERSIST', KEYS[1])
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', tonumber(ARGV[4])) end
return 1
