-- Served by build/gust-embed: GET / answers with values from the "host"
-- module, which the C program exposes with gust_preload().
local web = require "gust.web"
local host = require "host"

local Main = web.RequestHandler:extend()
function Main:get()
  local info = host.info()
  self:write({ fib10 = host.fib(10), fib50 = host.fib(50), program = info.program,
               pid = info.pid, gust = info.gust })
end

return web.Application({ {"/", Main} })
