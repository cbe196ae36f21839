-- Handlers that break a worker the ways an operator sees in production:
-- a loop that never returns, one that holds the loop for a while, and
-- allocations past what the Lua heap may hold.
local core = require "gust.core"
local web = require "gust.web"

local function spin_forever()
  local n = 0
  while true do n = n + 1 end
end

local Spin = web.RequestHandler:extend()
function Spin:get()
  spin_forever()
end

local function spin_for(seconds)
  local t = os.clock() + seconds
  while os.clock() < t do end
end

local Hold = web.RequestHandler:extend()
function Hold:get()
  spin_for(tonumber(self:get_argument("s", "0.4")))
  self:write("held")
end

local Pid = web.RequestHandler:extend()
function Pid:get()
  self:write(tostring(core.pid()))
end

local Oom = web.RequestHandler:extend()
function Oom:get()
  local t = {} -- luacheck: ignore 241 (filled only to exhaust memory)
  for i = 1, 1e10 do t[i] = {i} end
end

local kept = {}
local Grow = web.RequestHandler:extend()
function Grow:get()
  for _ = 1, tonumber(self:get_argument("mb", "8")) do
    kept[#kept + 1] = string.rep("x", 1024 * 1024 - 64) .. #kept
  end
  self:write(tostring(#kept))
end

return web.Application({
  {"/spin", Spin},
  {"/hold", Hold},
  {"/pid", Pid},
  {"/oom", Oom},
  {"/grow", Grow},
})
