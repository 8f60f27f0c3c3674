--[[
  fair-share(fairKey, prioritizedKey; tenant, quantum, scoreUnit, priorityLimit, cost...): the
  BullMQ priority of each of a tenant's new documents (shared/scheduling/fair-share.ts). scoreUnit
  and priorityLimit are BullMQ's priority contract (shared/scheduling/bullmq-priority.ts).

  Rounds are priorities: a tenant's documents fill its current round until their costs reach
  `quantum`, then go to the next one. A tenant with nothing ahead of it starts at the round being
  served now (the head of the prioritized set), so a new tenant's first documents wait behind one
  round of each busy tenant, not behind their whole backlog. Within a tenant rounds only grow
  (BullMQ breaks ties in insertion order): each tenant's documents keep their order.

  fairKey hash: `floor` (last round seen at the head), `r:<tenant>` (its last round),
  `u:<tenant>` (cost already in that round). Rounds start again at 1 once the prioritized set is
  empty and the floor has passed REBASE, well below BullMQ's priority limit. The hash expires after
  IDLE_MS without a submission (its tenants' rounds then start again at the head).
]]
local REBASE = 1000000
local IDLE_MS = 7 * 24 * 3600 * 1000
local fairkey, prioritized = KEYS[1], KEYS[2]
local tenant, quantum = ARGV[1], tonumber(ARGV[2])
local UNIT, LIMIT = tonumber(ARGV[3]), tonumber(ARGV[4])

local floor = tonumber(redis.call('HGET', fairkey, 'floor') or '1')
local head = redis.call('ZRANGE', prioritized, 0, 0, 'WITHSCORES')
local current
if head[2] then
  current = math.floor(tonumber(head[2]) / UNIT)
  if current > floor then
    floor = current
    redis.call('HSET', fairkey, 'floor', floor)
  end
else
  if floor > REBASE then
    redis.call('DEL', fairkey)
    floor = 1
  end
  current = floor
end
if current < 1 then current = 1 end

local round = tonumber(redis.call('HGET', fairkey, 'r:' .. tenant) or '0')
local used = tonumber(redis.call('HGET', fairkey, 'u:' .. tenant) or '0')
if round < current then
  round = current
  used = 0
end
local out = {}
for i = 5, #ARGV do
  local cost = tonumber(ARGV[i])
  if used > 0 and used + cost > quantum then
    round = round + 1
    used = 0
  end
  used = used + cost
  out[#out + 1] = math.min(round, LIMIT)
end
redis.call('HSET', fairkey, 'r:' .. tenant, round, 'u:' .. tenant, used)
redis.call('PEXPIRE', fairkey, IDLE_MS)
return out
