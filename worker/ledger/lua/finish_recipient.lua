-- KEYS: outcomes (hash: recipient -> outcome), campaign record, provider id key, batch record,
--       changes
-- ARGV: batch id, recipient (its fingerprint), outcome JSON, counter field, status, at,
--       error ('' for none), changes_maxlen
-- -> 1 when recorded, 0 when this recipient's final status was recorded already
-- A campaign recipient's final status, recorded once and counted on the campaign record. Its
-- change names the recipient by fingerprint only (32 hex digits; anything else is left out).
-- uses: change.lua
local outcomes, campaign, provider_id, batch, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, recipient, outcome, counter, status = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local at, error, maxlen = ARGV[6], ARGV[7], ARGV[8]
local fingerprint_length = 32

redis.call('DEL', provider_id)
if redis.call('HSETNX', outcomes, recipient, outcome) == 0 then return 0 end
local ttl = redis.call('TTL', campaign)
if ttl > 0 then
  redis.call('HINCRBY', campaign, counter, 1)
  redis.call('EXPIRE', outcomes, ttl)
else
  redis.call('EXPIRE', outcomes, 86400)
end
local named = ''
if #recipient == fingerprint_length and not string.find(recipient, '[^0-9a-f]') then
  named = recipient
end
change(changes, maxlen, batch, id, status, redis.call('HGET', batch, 'status') or '', at, error,
       named)
return 1
