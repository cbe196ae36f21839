-- gust.shared.dict operations per second from one process (DESIGN §4.9):
-- set, get (hits and misses), incr, add that fails, delete, on a 64 MiB dict
-- holding 10,000 keys. Each operation takes the dict's process-shared lock,
-- uncontended here.
-- Run: LUA_CPATH='build/lib/?.so;;' \
--   luajit -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' tests/bench/shdict.lua [N]
local core = require "gust.core"
local shared = require "gust.shared"

local N = tonumber(arg and arg[1]) or 2000000
local NKEYS = 10000

local d = assert(shared.dict("bench", "64m"))
d:flush_all()

local keys = {}
for i = 1, NKEYS do keys[i] = "key:" .. i end
local value = ("v"):rep(64)

local function bench(label, fn)
  collectgarbage("collect")
  local t0 = core.now()
  fn()
  local dt = core.now() - t0
  print(("%-28s %10.0f ops/s  (%.0f ns/op)"):format(label, N / dt, dt / N * 1e9))
end

bench("set (64-byte string)", function()
  local set = d.set
  for i = 1, N do set(d, keys[i % NKEYS + 1], value) end
end)

bench("get (hit, 64-byte string)", function()
  local get = d.get
  for i = 1, N do get(d, keys[i % NKEYS + 1]) end
end)

bench("get (miss)", function()
  local get = d.get
  for _ = 1, N do get(d, "absent") end
end)

bench("set (number)", function()
  local set = d.set
  for i = 1, N do set(d, keys[i % NKEYS + 1], i) end
end)

bench("get (hit, number)", function()
  local get = d.get
  for i = 1, N do get(d, keys[i % NKEYS + 1]) end
end)

bench("incr (one hot key)", function()
  local incr = d.incr
  for _ = 1, N do incr(d, "hits", 1, 0) end
end)

bench("incr (10,000 keys)", function()
  local incr = d.incr
  for i = 1, N do incr(d, keys[i % NKEYS + 1], 1, 0) end
end)

bench("add (exists)", function()
  local add = d.add
  for i = 1, N do add(d, keys[i % NKEYS + 1], 1) end
end)

bench("set + delete (new key)", function()
  local set, delete = d.set, d.delete
  for i = 1, N / 2 do
    local k = keys[i % NKEYS + 1] .. "x"
    set(d, k, value)
    delete(d, k)
  end
end)

assert(d:get("hits") == N)
print(("%d entries, %d of %d bytes free"):format(#d:keys(0), d:free_space(), d:capacity()))
