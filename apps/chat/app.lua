-- A long-polling chat room in the style of Tornado's chat demo.
--
--   GET  /                    the page (static/index.html)
--   POST /a/message/new       body=<text>          -> the message as JSON
--   POST /a/message/updates   cursor=<last id>     -> {"messages": [...]},
--                             held open until there is something newer
--   GET  /a/stats             waiting and disconnected poll counts (tests)
--
-- A waiting poll sleeps on a Condition. When its client goes away,
-- on_connection_close cancels the wait, so no dead request lingers.
local web = require "gust.web"
local locks = require "gust.locks"
local escape = require "gust.escape"
local core = require "gust.core"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

local MessageBuffer = {}
MessageBuffer.__index = MessageBuffer

function MessageBuffer.new(size)
  return setmetatable({ cond = locks.Condition(), cache = {}, size = size or 200, seq = 0 },
                      MessageBuffer)
end

-- Messages after `cursor` (all of them when the cursor is unknown or nil).
function MessageBuffer:since(cursor)
  local cache, out = self.cache, {}
  local start = 1
  if cursor then
    for i = #cache, 1, -1 do
      if cache[i].id == cursor then start = i + 1 break end
    end
  end
  for i = start, #cache do out[#out + 1] = cache[i] end
  return out
end

function MessageBuffer:add(body)
  self.seq = self.seq + 1
  local msg = {
    id = ("%x-%d"):format(math.floor(core.time()), self.seq),
    body = body,
    html = '<div class="message">' .. escape.xhtml_escape(body) .. "</div>",
  }
  local cache = self.cache
  cache[#cache + 1] = msg
  if #cache > self.size then table.remove(cache, 1) end
  self.cond:notify_all()
  return msg
end

local buffer = MessageBuffer.new(200)
local stats = { waiting = 0, disconnected = 0 }

local NewMessage = web.RequestHandler:extend()
function NewMessage:post()
  local msg = buffer:add(self:get_argument("body"))
  if self:get_argument("next", nil) then
    return self:redirect(self:get_argument("next"))
  end
  self:write(msg)
end

local Updates = web.RequestHandler:extend()
function Updates:post()
  local cursor = self:get_argument("cursor", nil)
  local messages = buffer:since(cursor)
  while #messages == 0 do
    self._waiting = coroutine.running()
    stats.waiting = stats.waiting + 1
    local ok, err = buffer.cond:wait(self.settings.poll_timeout)
    stats.waiting = stats.waiting - 1
    self._waiting = nil
    if not ok then
      if err == "closed" then return end      -- the client left: nothing to send
      break                                   -- timeout: answer with nothing new
    end
    messages = buffer:since(cursor)
  end
  self:write({ messages = messages })
end

function Updates:on_connection_close()
  stats.disconnected = stats.disconnected + 1
  if self._waiting then locks.cancel(self._waiting, "closed") end
end

local Stats = web.RequestHandler:extend()
function Stats:get() self:write(stats) end

return web.Application({
  {"/", web.StaticFileHandler, {path = here .. "static", default_filename = "index.html"}},
  {"/a/message/new", NewMessage},
  {"/a/message/updates", Updates},
  {"/a/stats", Stats},
}, { poll_timeout = 60 })
