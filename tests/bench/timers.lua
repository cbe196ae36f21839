-- One million timers scheduled and fired on the real loop (DESIGN §4.2).
-- Run: LUA_CPATH='build/lib/?.so;;' \
--   luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' tests/bench/timers.lua [N]
local core = require "gust.core"
local testing = require "gust.testing"

local N = tonumber(arg and arg[1]) or 1000000

testing.run(function()
  local fired = 0
  local function cb() fired = fired + 1 end
  collectgarbage("collect")
  local mem0 = collectgarbage("count")
  local t0 = core.now()
  for i = 1, N do
    -- deadlines spread over 0..100 ms so the heap does real ordering work
    core.call_later((i % 1000) / 10000, cb)
  end
  local t1 = core.now()
  local mem1 = collectgarbage("count")
  while fired < N do core.sleep(0.01) end
  local t2 = core.now()
  print(("timers: %d scheduled in %.3f s, all fired after %.3f s (total %.3f s); Lua heap +%.0f MiB while pending")
        :format(N, t1 - t0, t2 - t1, t2 - t0, (mem1 - mem0) / 1024))
end, 120)
