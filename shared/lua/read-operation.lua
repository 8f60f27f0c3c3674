--[[
  A status read in one round trip (the api's rate-limits.ts): the tenant's reads window, then the
  operation's record, whole, its head (what a long-poll checks before it waits), or whole unless the
  caller holds it already (what the api's kept status answers check, api/read/status-answers.ts).
  KEYS[1] reads window  KEYS[2] operation hash
  ARGV[1] reads quota (0: no limit)  ARGV[2] window (s)  ARGV[3] 'all', 'head' or 'view'
  ARGV[4] ('view') the revision of the record the caller holds, '' for none
  Returns {'limited', consumed, window ms left} (the record is not read), or
  {'ok', consumed, window ms left, fields}: fields is HGETALL's flat list ('all') or id, tenant,
  status ('head'; false for a missing field). 'view' returns {'same', consumed, window ms left}
  when the record's revision is ARGV[4], else {'ok', consumed, window ms left, fields, revision}
  (revision false for a record without one: missing, or not changed since it was created).
  The revision is the record's field `rev`, which every script that changes a record counts up
  (HINCRBY; the first time when its submission is committed, accepted.lua), with its `updatedAt`
  (`rev@updatedAt`): the scripts of versions without `rev` (a rolling upgrade) still set updatedAt
  on every change they make to what a status shows, so a kept answer is stale after one of them
  only when it was read in the same millisecond as that change.
]]
-- @include "window"

local quota = tonumber(ARGV[1])
local consumed, ttl = 0, 0
if quota > 0 then
  consumed, ttl = window_take(KEYS[1], 1, tonumber(ARGV[2]))
  if consumed > quota then return { 'limited', consumed, ttl } end
end
if ARGV[3] == 'head' then
  return { 'ok', consumed, ttl, redis.call('HMGET', KEYS[2], 'id', 'tenant', 'status') }
end
if ARGV[3] ~= 'view' then return { 'ok', consumed, ttl, redis.call('HGETALL', KEYS[2]) } end
local h = redis.call('HMGET', KEYS[2], 'rev', 'updatedAt')
local rev = h[1] and (h[1] .. '@' .. (h[2] or ''))
if rev and rev == ARGV[4] then return { 'same', consumed, ttl } end
return { 'ok', consumed, ttl, redis.call('HGETALL', KEYS[2]), rev }
