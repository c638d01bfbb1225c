-- wrk script of bench/http/run. Arguments (after --): mode dir offset
-- threads, where mode is receipts, counts or members and dir holds the
-- files written by `helper setup`.
--
-- receipts: each call is one reader's receipts for a batch of 10 messages;
-- thread t's k-th call uses reader offset + t + threads*floor(k/batches),
-- so that, until the readers run out, every call records new receipts.
-- counts: the sender asks for the counts of a batch. members: the sender
-- asks for a page of 50 unread members of a message.

local threads = {}

local function lines(path)
  local t = {}
  for l in io.lines(path) do t[#t + 1] = l end
  return t
end

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode, dir = args[1], args[2]
  offset, nthreads = tonumber(args[3]), tonumber(args[4])
  tokens = lines(dir .. "/tokens.txt")
  batches = lines(dir .. "/batches.txt")
  sender = lines(dir .. "/sender.txt")[1]
  page = lines(dir .. "/members.json")[1]
  counter = 0
end

function request()
  local tok, body, path = sender, nil, nil
  local k = counter
  counter = counter + 1
  if mode == "receipts" then
    local reader = offset + id + nthreads * math.floor(k / #batches)
    tok = tokens[(reader % #tokens) + 1]
    body, path = batches[(k % #batches) + 1], "/v1/receipts"
  elseif mode == "counts" then
    body, path = batches[(k % #batches) + 1], "/v1/receipts/query"
  else
    body, path = page, "/v1/receipts/members"
  end
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. tok, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
