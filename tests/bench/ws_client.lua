-- Load generator for tests/bench/websocket.sh, on gust's own client:
--   luajit ws_client.lua URL CONNS SECONDS SIZE [deflate]
-- CONNS connections each do echo round trips back to back (send SIZE
-- bytes of text, wait for the echo) for SECONDS once all are connected.
-- Prints "messages N seconds S errors E".
local core = require "gust.core"
local websocket = require "gust.websocket"

local url, conns, secs, size = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
local deflate = arg[5] == "deflate"
local payload = string.rep("x", size)
local total, errors, ready, done = 0, 0, 0, 0
local t0, t_end

local function finished()
  done = done + 1
  if done == conns then core.stop() end
end

for _ = 1, conns do
  core.spawn(function()
    local c, err = websocket.connect(url, { compression = deflate or nil })
    ready = ready + 1
    if not c then
      errors = errors + 1
      io.stderr:write("connect: ", tostring(err), "\n")
      return finished()
    end
    while not t_end do core.sleep(0.005) end
    local n = 0
    while core.now() < t_end do
      c:write_message(payload)
      if not c:read_message() then errors = errors + 1 break end
      n = n + 1
    end
    total = total + n
    c:close()
    c:read_message()
    finished()
  end)
end
core.spawn(function()
  while ready < conns do core.sleep(0.005) end
  t0 = core.now()
  t_end = t0 + secs
end)
core.run()
print(string.format("messages %d seconds %.3f errors %d", total, core.now() - t0, errors))
