-- KEYS: record, events, idempotency key ('' for none), index it enters ('' for none), changes,
--       expiries
-- ARGV: id, idem_ttl, request_hash, status, score, history entry, op, record_ttl, at,
--       changes_maxlen, field, value, ...
-- -> {'created', id, status} | {'exists', id, status} | {'duplicate', first id, ''}
--  | {'conflict', first id, ''}   (a duplicate's status is read by the caller)
-- uses: change.lua, create_record.lua
local record, events, idem, target, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local expiries = KEYS[6] or ''
local id, ttl, hash, status, score, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local op, life, at, maxlen = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local first_field = 11

local fields = {}
for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
return create({record = record, events = events, idem = idem, target = target, changes = changes,
               expiries = expiries,
               id = id, ttl = ttl, hash = hash, status = status, score = score, entry = entry,
               fields = fields, op = op, life = life, at = at, maxlen = maxlen})
