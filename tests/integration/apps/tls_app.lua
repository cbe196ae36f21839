-- Served over HTTPS by test_tls.py.
local gust = require "gust"
local web = require "gust.web"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

local Proto = web.RequestHandler:extend()
function Proto:get() self:write(self.request.protocol) end

local EchoLen = web.RequestHandler:extend()
function EchoLen:post() self:write(tostring(#self.request.body)) end

local Stream = web.RequestHandler:extend()
function Stream:get()
  for i = 1, 3 do
    self:write("chunk" .. i .. "\n")
    self:flush()
    gust.sleep(0.02)
  end
end

return web.Application({
  {"/proto", Proto}, {"/echo_len", EchoLen}, {"/stream", Stream},
  {"/static/(.*)", web.StaticFileHandler, {path = here}},
})
