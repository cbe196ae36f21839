-- For tests/integration/test_shared.py: a hit counter in a shared dict,
-- bumped by every worker, which also counts its own hits there, so the test
-- can tell the total is exact and that each worker served.
local core = require "gust.core"
local gust = require "gust"
local shared = require "gust.shared"
local web = require "gust.web"

local counters = assert(shared.dict("counters", "1m"))

local Incr = web.RequestHandler:extend()
function Incr:get()
  local n = assert(counters:incr("hits", 1, 0))
  counters:incr("worker:" .. core.pid(), 1, 0)
  gust.sleep(0.002) -- let the other worker take a turn at accepting
  self:write({ count = n, pid = core.pid() })
end

local Count = web.RequestHandler:extend()
function Count:get()
  local workers = {}
  for _, k in ipairs(counters:keys(0)) do
    local pid = k:match("^worker:(%d+)$")
    if pid then workers[pid] = counters:get(k) end
  end
  self:write({ hits = counters:get("hits") or 0, workers = workers, pid = core.pid() })
end

return web.Application({ {"/incr", Incr}, {"/count", Count} })
