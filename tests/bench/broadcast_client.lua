-- The load of tests/bench/broadcast.sh, on gust's own clients:
--   luajit broadcast_client.lua PORT_A PORT_B CONNS MESSAGES
-- Opens CONNS WebSockets, half on each server, then MESSAGES times posts
-- one message to server A and times its arrival on every socket (the
-- clock is CLOCK_MONOTONIC read through the FFI, not the loop's cached
-- time). Prints p50, p99 and max over all arrivals.
local core = require "gust.core"
local websocket = require "gust.websocket"
local httpclient = require "gust.httpclient"
local ffi = require "ffi"

ffi.cdef [[
  struct gust_bench_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct gust_bench_timespec *ts);
]]
local ts = ffi.new("struct gust_bench_timespec")
local function clock()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local port_a, port_b = tonumber(arg[1]), tonumber(arg[2])
local conns, messages = tonumber(arg[3]) or 10000, tonumber(arg[4]) or 5
local sent = {}            -- message number -> clock when posted
local latencies = {}
local received = {}        -- message number -> arrivals
local connected, failed = 0, 0
local client = httpclient.AsyncHTTPClient()

local function reader(url)
  local c, err = websocket.connect(url)
  if not c then
    failed = failed + 1
    io.stderr:write("connect: ", tostring(err), "\n")
    return
  end
  connected = connected + 1
  while true do
    local msg = c:read_message()
    if not msg then return end
    local t = clock()
    local k = tonumber(msg)
    latencies[#latencies + 1] = t - sent[k]
    received[k] = (received[k] or 0) + 1
  end
end

core.spawn(function()
  -- connect in waves, so the listen backlogs never overflow
  local wave = 200
  for i = 1, conns, wave do
    for j = i, math.min(i + wave - 1, conns) do
      local port = j % 2 == 0 and port_a or port_b
      core.spawn(reader, ("ws://127.0.0.1:%d/sub"):format(port))
    end
    while connected + failed < math.min(i + wave - 1, conns) do core.sleep(0.005) end
  end
  local function count(port)
    local r = client:fetch(("http://127.0.0.1:%d/count"):format(port))
    return tonumber(r.body) or 0
  end
  while count(port_a) + count(port_b) < connected do core.sleep(0.05) end
  print(("%d sockets open (%d failed), half on each server"):format(connected, failed))
  for k = 1, messages do
    core.sleep(0.5)
    sent[k] = clock()
    local r = client:fetch(("http://127.0.0.1:%d/pub"):format(port_a),
                           { method = "POST", body = tostring(k) })
    assert(r.code == 200 and r.body == "ok", r.body)
    local deadline = core.now() + 10
    while (received[k] or 0) < connected and core.now() < deadline do core.sleep(0.002) end
    print(("message %d: reached %d of %d sockets"):format(k, received[k] or 0, connected))
  end
  table.sort(latencies)
  local function pct(p) return latencies[math.max(1, math.ceil(#latencies * p))] * 1000 end
  print(("broadcast latency over %d arrivals: p50 %.1f ms, p99 %.1f ms, max %.1f ms")
        :format(#latencies, pct(0.5), pct(0.99), latencies[#latencies] * 1000))
  os.exit(0)
end)
core.run()
