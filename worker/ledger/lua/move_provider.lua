-- KEYS: record, events, failover stats hash
-- ARGV: to provider, reason, now (ISO), afresh ('1': its attempts start again), waiting statuses (comma separated),
--   payload (the JSON it carries with the new provider; '' keeps it)
-- -> {'moved', from} or {'refused', why}
-- Move a waiting email to the other provider, once: never one pinned to its provider, in
-- doubt (its provider may have it), already moved, or not waiting; unless `afresh` (its
-- retries spent), one never handed to a provider yet.
local record, events, stats = KEYS[1], KEYS[2], KEYS[3]
local to, reason, at, afresh, waiting, payload = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local row = redis.call('HMGET', record, 'status', 'provider', 'pinned', 'in_doubt', 'moved_from', 'attempts')
if not row[1] then return {'refused', 'missing'} end
if row[3] == '1' then return {'refused', 'pinned'} end
if row[4] == '1' then return {'refused', 'in_doubt'} end
if row[5] and row[5] ~= '' then return {'refused', 'moved'} end
if not string.find(',' .. waiting .. ',', ',' .. row[1] .. ',', 1, true) then return {'refused', 'status'} end
if afresh ~= '1' and tonumber(row[6] or '0') > 0 then return {'refused', 'tried'} end
if row[2] == to then return {'refused', 'same'} end

redis.call('HSET', record, 'provider', to, 'moved_from', row[2])
if payload ~= '' then redis.call('HSET', record, 'payload', payload) end
if afresh == '1' then redis.call('HSET', record, 'attempts', 0, 'free_tries', 0) end
redis.call('RPUSH', events, cjson.encode({type = 'failover', at = at, from = row[2], to = to, reason = reason}))
redis.call('HINCRBY', stats, row[2] .. '>' .. to .. ':' .. reason, 1)
return {'moved', row[2]}
