-- change(stream, maxlen, record, id, status, previous, at, error, recipient): append one status
-- change to the change stream, with where the record stands after it. `error` (when not nil)
-- replaces the record's own error; `recipient` (when not nil) names a campaign recipient. The
-- entry says what happened to a message, never to whom it goes nor what it says.
local function change(stream, maxlen, record, id, status, previous, at, error, recipient)
  local row = redis.call('HMGET', record, 'channel', 'provider', 'lane', 'reference', 'attempts',
                         'error')
  local entry = {'id', id, 'status', status, 'previous', previous, 'channel', row[1] or '',
                 'provider', row[2] or '', 'lane', row[3] or '', 'reference', row[4] or '',
                 'at', at, 'attempt', row[5] or '0', 'error', error or row[6] or ''}
  if recipient then
    entry[#entry + 1] = 'recipient'
    entry[#entry + 1] = recipient
  end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(entry))
end
