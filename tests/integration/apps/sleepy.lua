-- Every request sleeps half a second, yielding its coroutine meanwhile.
local gust = require "gust"
local web = require "gust.web"

local Sleepy = web.RequestHandler:extend()
function Sleepy:get()
  gust.sleep(0.5)
  self:write("slept")
end

return web.Application({ {"/", Sleepy} })
