-- gust.websocket: WebSocketHandler served in-process and the gust client
-- talking to it over loopback, on the real loop.
local core = require "gust.core"
local gust = require "gust"
local web = require "gust.web"
local websocket = require "gust.websocket"
local testing = require "gust.testing"

local seen -- what the handlers saw, per test

local Echo = websocket.WebSocketHandler:extend()
function Echo:open(name)
  seen.opened = (seen.opened or 0) + 1
  seen.open_args = { name }
  if name then self:write_message("hello " .. name) end
end
function Echo:on_message(msg, binary)
  seen.messages = seen.messages or {}
  seen.messages[#seen.messages + 1] = msg
  local code, reason = msg:match("^close:(%d+):(.*)$")
  if code then return self:close(tonumber(code), reason) end
  if msg == "json" then return self:write_message({ a = 1 }) end
  if msg == "ping" then return self:ping("from server") end
  if msg == "slow" then gust.sleep(0.05) end
  self:write_message(msg, binary)
end
function Echo:on_pong(data) self:write_message("pong " .. data) end
function Echo.on_ping(_, data) seen.ping = data end
function Echo:on_close()
  seen.close_code, seen.close_reason = self.close_code, self.close_reason
  seen.after_close = { self:write_message("late") }
end
function Echo.select_subprotocol(_, list)
  for _, p in ipairs(list) do if p == "v2" then return p end end
end

local Small = Echo:extend()
Small.max_message_size = 100

local Boom = websocket.WebSocketHandler:extend()
function Boom.on_message() error("boom") end
function Boom:on_close() seen.close_code = self.close_code end

local function app(settings)
  return web.Application({
    { "/ws", Echo },
    { "/ws/(%w+)", Echo },
    { "/small", Small },
    { "/boom", Boom },
  }, settings)
end

local function ws_url(base, path) return (base:gsub("^http", "ws")) .. path end

-- Runs fn(base_url) as a task with `application` served.
local function with_server(application, fn)
  testing.run(function()
    local base, listener = testing.serve(application)
    local ok, err = pcall(fn, base)
    listener:close()
    if not ok then error(err, 0) end
  end, 10)
end

describe("gust.websocket", function()
  before_each(function() seen = {} end)

  it("echoes text, binary and JSON, and passes route captures to open", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws/alice")))
      assert.same({ "hello alice", false }, { c:read_message() })
      assert.same({ "alice" }, seen.open_args)
      c:write_message("héllo")
      assert.same({ "héllo", false }, { c:read_message() })
      c:write_message("\0\1\2", true)
      assert.same({ "\0\1\2", true }, { c:read_message() })
      c:write_message({ x = "y" })
      assert.same({ '{"x":"y"}', false }, { c:read_message() })
      c:write_message("json")
      assert.same({ '{"a":1}', false }, { c:read_message() })
      local big = string.rep("0123456789", 100000)
      c:write_message(big, true)
      local got, bin = c:read_message()
      assert.equal(#big, #got)
      assert.is_true(got == big and bin)
      c:close()
      assert.is_nil(c:read_message())
      assert.equal(1000, c.close_code)
    end)
  end)

  it("negotiates a subprotocol", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws"), { subprotocols = { "v1", "v2" } }))
      assert.equal("v2", c.selected_subprotocol)
      c:close()
      c = assert(websocket.connect(ws_url(base, "/ws"), { subprotocols = { "v1" } }))
      assert.is_nil(c.selected_subprotocol)
      c:close()
    end)
  end)

  it("runs the close handshake from either side with codes and reasons", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws")))
      c:close(4000, "bye now")
      assert.is_nil(c:read_message())
      assert.equal(4000, c.close_code)
      core.sleep(0.05)
      assert.equal(4000, seen.close_code)
      assert.equal("bye now", seen.close_reason)
      -- Writes after the close answer nil, "closed".
      assert.same({ nil, "closed" }, seen.after_close)
      assert.same({ nil, "closed" }, { c:write_message("x") })

      c = assert(websocket.connect(ws_url(base, "/ws")))
      c:write_message("close:4321:server says")
      assert.is_nil(c:read_message())
      assert.equal(4321, c.close_code)
      assert.equal("server says", c.close_reason)
    end)
  end)

  it("checks close arguments", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws")))
      assert.has_error(function() c:close(1005) end)
      assert.has_error(function() c:close(999) end)
      assert.has_error(function() c:close(1000, string.rep("x", 124)) end)
      c:close()
    end)
  end)

  it("pings both ways", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws")))
      c:write_message("ping") -- the server pings; the client's core answers
      assert.same({ "pong from server", false }, { c:read_message() })
      c:ping("hi")
      c:write_message("after ping")
      assert.same({ "after ping", false }, { c:read_message() })
      assert.equal("hi", seen.ping)
      c:close()
    end)
  end)

  it("handles messages in order behind a slow on_message", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws")))
      c:write_message("slow")
      for i = 1, 10 do c:write_message("m" .. i) end
      assert.equal("slow", (c:read_message()))
      for i = 1, 10 do assert.equal("m" .. i, (c:read_message())) end
      c:close()
    end)
  end)

  it("closes with 1009 past max_message_size, on both sides", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/small")))
      c:write_message(string.rep("x", 100))
      assert.equal(100, #c:read_message())
      c:write_message(string.rep("x", 101))
      assert.is_nil(c:read_message())
      assert.equal(1009, c.close_code)
      -- The client's own limit.
      c = assert(websocket.connect(ws_url(base, "/ws"), { max_message_size = 10 }))
      c:write_message(string.rep("y", 11))
      assert.is_nil(c:read_message())
      assert.equal(1009, c.close_code)
    end)
  end)

  it("closes with 1011 when a handler raises", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/boom")))
      c:write_message("x")
      assert.is_nil(c:read_message())
      assert.equal(1011, c.close_code)
    end)
  end)

  it("compresses with permessage-deflate when enabled", function()
    with_server(app({ websocket_compression = true }), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws"), { compression = true }))
      assert.is_true(c.ws_connection:compressed())
      assert.matches("permessage%-deflate", c.headers["Sec-WebSocket-Extensions"])
      local text = string.rep("compress me ", 10000)
      for _ = 1, 3 do
        c:write_message(text)
        assert.equal(text, (c:read_message()))
      end
      c:close()
      -- Without the client's offer, no compression.
      c = assert(websocket.connect(ws_url(base, "/ws")))
      assert.is_false(c.ws_connection:compressed())
      c:close()
      -- no_context_takeover both ways.
      c = assert(websocket.connect(ws_url(base, "/ws"), { compression = {
        client_no_context_takeover = true, server_no_context_takeover = true,
        client_max_window_bits = 10 } }))
      assert.matches("no_context_takeover", c.headers["Sec-WebSocket-Extensions"])
      for _ = 1, 3 do
        c:write_message(text)
        assert.equal(text, (c:read_message()))
      end
      c:close()
    end)
  end)

  it("does not compress unless the application enables it", function()
    with_server(app(), function(base)
      local c = assert(websocket.connect(ws_url(base, "/ws"), { compression = true }))
      assert.is_false(c.ws_connection:compressed())
      c:write_message("plain")
      assert.equal("plain", (c:read_message()))
      c:close()
    end)
  end)

  it("refuses handshakes: 403 cross-origin, 404, refused connection", function()
    with_server(app(), function(base)
      local c, err, code = websocket.connect(ws_url(base, "/ws"),
                                             { headers = { Origin = "http://evil.example" } })
      assert.is_nil(c)
      assert.equal(403, code)
      assert.matches("403", err)
      c, err, code = websocket.connect(ws_url(base, "/nowhere"))
      assert.matches("404", err)
      assert.is_nil(c)
      assert.equal(404, code)
      -- Same origin is fine.
      local host = base:match("^http://(.*)$")
      c = assert(websocket.connect(ws_url(base, "/ws"), { headers = { Origin = "http://" .. host } }))
      c:close()
    end)
    testing.run(function()
      local listener = web.Application({}):listen(0, "127.0.0.1")
      local port = listener:port()
      listener:close()
      local c, err = websocket.connect("ws://127.0.0.1:" .. port .. "/ws")
      assert.is_nil(c)
      assert.equal("connection refused", err)
      c, err = websocket.connect("ftp://x/")
      assert.is_nil(c)
      assert.matches("unsupported scheme", err)
    end)
  end)

  it("sends 1001 to every server connection when the server goes away", function()
    with_server(app(), function(base)
      local a = assert(websocket.connect(ws_url(base, "/ws")))
      local b = assert(websocket.connect(ws_url(base, "/ws")))
      a:write_message("x")
      assert.equal("x", (a:read_message()))
      assert.equal(2, core.ws_going_away()) -- the clients' own are left alone
      assert.is_nil(a:read_message())
      assert.is_nil(b:read_message())
      assert.equal(1001, a.close_code)
      assert.equal("server going away", b.close_reason)
      core.sleep(0.05) -- the server reads the clients' answers
      assert.equal(0, core.ws_going_away())
    end)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() websocket.connect(42) end)
    assert.has_error(function() websocket.connect("ws://x/", { bogus = 1 }) end)
    assert.has_error(function() websocket.connect("ws://x/", { headers = "x" }) end)
  end)

  it("a plain HTTP GET to a WebSocket route is a 400", function()
    local resp = testing.fetch(app(), "/ws")
    assert.equal(400, resp.code)
  end)

  it("the handshake helpers follow the RFCs", function()
    assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ=="))
    assert.equal("permessage-deflate",
                 core.ws_negotiate("permessage-deflate; client_max_window_bits", {}))
    assert.is_nil(core.ws_negotiate("x-webkit-deflate-frame", {}))
    assert.equal("permessage-deflate; client_max_window_bits", core.ws_offer())
  end)
end)
