-- gust.redis GET round trips per second from one process (one worker's
-- loop): CONNS tasks, each with its own pooled connection, each doing GETs
-- one at a time (like redis-benchmark -c CONNS -P 1); then the same with
-- pipelines of DEPTH GETs per round trip.
-- Run (tests/bench/redis.sh does): LUA_CPATH='build/lib/?.so;;' \
--   luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' \
--   tests/bench/redis_get.lua PORT [N] [CONNS] [DEPTH]
local core = require "gust.core"
local testing = require "gust.testing"
local redis = require "gust.redis"

local PORT = tonumber(arg[1])
local N = tonumber(arg[2]) or 200000
local CONNS = tonumber(arg[3]) or 50
local DEPTH = tonumber(arg[4]) or 16

local function run(label, per_call, body)
  local done, left = 0, N
  local t0 = core.now()
  for _ = 1, CONNS do
    core.spawn(function()
      local r = assert(redis.connect({ port = PORT }))
      while left > 0 do
        left = left - per_call
        body(r)
      end
      r:close()
      done = done + 1
    end)
  end
  while done < CONNS do core.sleep(0.01) end
  local dt = core.now() - t0
  print(("%s: %d GETs in %.2f s: %.0f GETs/s"):format(label, N, dt, N / dt))
end

testing.run(function()
  local r = assert(redis.connect({ port = PORT }))
  assert(r:set("key:__rand_int__", ("x"):rep(3)))
  r:close()
  run(("gust.redis GET, %d connections, 1 in flight each"):format(CONNS), 1, function(c)
    assert(c:get("key:__rand_int__"))
  end)
  run(("gust.redis GET, %d connections, pipelines of %d"):format(CONNS, DEPTH), DEPTH,
      function(c)
        local res = c:pipeline(function(p)
          for _ = 1, DEPTH do p:get("key:__rand_int__") end
        end)
        assert(#res == DEPTH)
      end)
end, 600)
