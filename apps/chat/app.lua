-- A chat room in the style of Tornado's chat demos, long polling and
-- WebSocket side by side.
--
--   GET  /                    the page (static/index.html)
--   POST /a/message/new       body=<text>          -> the message as JSON
--   POST /a/message/updates   cursor=<last id>     -> {"messages": [...]},
--                             held open until there is something newer
--   GET  /chatsocket          WebSocket: sends {"messages": [...]} (the
--                             backlog first, then each new message); takes
--                             {"body": "<text>"} (or plain text) to post
--   GET  /a/stats             waiting and disconnected poll counts, open
--                             sockets (tests)
--
-- A waiting poll sleeps on a Condition. When its client goes away,
-- on_connection_close cancels the wait, so no dead request lingers. New
-- messages reach every socket of this worker at once, and the other
-- workers' (--workers N) through gust.pubsub. A socket that stops reading
-- is closed by the core once 4 MiB wait for it (1008), so one slow client
-- never holds up the room.
local web = require "gust.web"
local websocket = require "gust.websocket"
local locks = require "gust.locks"
local escape = require "gust.escape"
local core = require "gust.core"
local pubsub = require "gust.pubsub"

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

-- Keeps a message (made here or in another worker) and wakes the polls.
function MessageBuffer:keep(msg)
  local cache = self.cache
  cache[#cache + 1] = msg
  if #cache > self.size then table.remove(cache, 1) end
  self.cond:notify_all()
end

local buffer = MessageBuffer.new(200)
local stats = { waiting = 0, disconnected = 0, sockets = 0 }
local sockets = {} -- the open ChatSocket handlers of this worker
local worker = tostring(core.pid())

-- Keeps the message and sends it to this worker's sockets. Another task
-- than theirs: write_message never waits for a slow one.
-- {"messages": [...]}; spelled out, since an empty Lua table would be
-- encoded as {} and the page wants a list.
local function messages_json(list)
  return '{"messages":' .. (#list == 0 and "[]" or escape.json_encode(list)) .. "}"
end

local function fan_out(msg)
  buffer:keep(msg)
  local frame = messages_json({ msg })
  for socket in pairs(sockets) do socket:write_message(frame) end
end

local seq = 0

-- A new message, to everyone: here at once, the other workers through
-- pubsub (which also delivers here; fan_out skips our own).
local function post(body)
  seq = seq + 1
  local msg = {
    id = ("%x-%s-%d"):format(math.floor(core.time()), worker, seq),
    body = body,
    html = '<div class="message">' .. escape.xhtml_escape(body) .. "</div>",
  }
  fan_out(msg)
  pubsub.publish("chat", escape.json_encode({ from = worker, msg = msg }))
  return msg
end

pubsub.subscribe("chat", function(message)
  local ok, t = pcall(escape.json_decode, message)
  if ok and type(t) == "table" and t.from ~= worker and type(t.msg) == "table" then
    fan_out(t.msg)
  end
end)

local NewMessage = web.RequestHandler:extend()
function NewMessage:post()
  local msg = post(self:get_argument("body"))
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

local ChatSocket = websocket.WebSocketHandler:extend()
function ChatSocket:open()
  sockets[self] = true
  stats.sockets = stats.sockets + 1
  self:write_message(messages_json(buffer:since(nil)))
end

function ChatSocket.on_message(_, text)
  local body = text
  if text:sub(1, 1) == "{" then
    local ok, t = pcall(escape.json_decode, text)
    body = ok and type(t) == "table" and t.body or nil
  end
  if type(body) == "string" and body ~= "" then post(body) end
end

function ChatSocket:on_close()
  if sockets[self] then
    sockets[self] = nil
    stats.sockets = stats.sockets - 1
  end
end

local Stats = web.RequestHandler:extend()
function Stats:get() self:write(stats) end

return web.Application({
  {"/", web.StaticFileHandler, {path = here .. "static", default_filename = "index.html"}},
  {"/a/message/new", NewMessage},
  {"/a/message/updates", Updates},
  {"/chatsocket", ChatSocket},
  {"/a/stats", Stats},
}, { poll_timeout = 60 })
