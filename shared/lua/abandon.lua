--[[
  Undoes a submission that failed before its commit: deletes the record while it is still
  accepting. A record already committed (markAccepted reached Redis) is left alone.
  KEYS[1] operation hash
  Returns 'abandoned', 'committed' or 'missing'.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HGET', KEYS[1], 'accepting') == '1' then
  redis.call('DEL', KEYS[1])
  return 'abandoned'
end
return 'committed'
