-- gust's side of tests/bench/httpclient.sh, run under plain luajit:
--   luajit httpclient_gust.lua URL N CONCURRENCY
-- fetches URL N times with gust.httpclient, CONCURRENCY at a time (1:
-- one after the other), and prints "requests=N ok=N seconds=S".
local core = require "gust.core"
local httpclient = require "gust.httpclient"
local testing = require "gust.testing"

local url, n, conc = arg[1], tonumber(arg[2]), tonumber(arg[3] or "1")
local ok, failed, first_err = 0, 0, nil
local t0

testing.run(function()
  local client = httpclient.AsyncHTTPClient({ max_clients = conc })
  -- one warm-up fetch opens the first connection
  assert(client:fetch(url))
  t0 = core.now()
  local per, rest = math.floor(n / conc), n % conc
  local running = conc
  local function worker(count)
    for _ = 1, count do
      local resp, err = client:fetch(url)
      if resp and resp.code == 200 then
        ok = ok + 1
      else
        failed = failed + 1
        first_err = first_err or err or resp.code
      end
    end
    running = running - 1
  end
  for i = 1, conc - 1 do core.spawn(worker, per + (i <= rest and 1 or 0)) end
  worker(per + (conc <= rest and 1 or 0))
  while running > 0 do core.sleep(0.001) end
end, 600)

local secs = core.now() - t0
print(("requests=%d ok=%d failed=%d seconds=%.4f%s"):format(n, ok, failed, secs,
      first_err and (" first_error=" .. tostring(first_err)) or ""))
