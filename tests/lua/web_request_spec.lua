-- gust.web.request: self.request, its fields and on_close.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local fake, web, fetch = helpers.fake, helpers.web, helpers.fetch
local handler, app_with = helpers.handler, helpers.app_with

describe("self.request", function()
  local seen
  local Capture = handler({})
  for _, verb in ipairs({ "get", "post", "put" }) do
    Capture[verb] = function(self) seen = self.request end
  end

  it("has every member of the table in DESIGN 4.1", function()
    local req = fetch(app_with(Capture, nil, "/p.*"), "GET", "/p%20x?a=1&b=2&a=3", {
      headers = { { "Host", "example.com:8080" }, { "X-Dup", "1" }, { "x-dup", "2" } },
      version = "HTTP/1.0", remote_ip = "10.0.0.9",
    })
    assert.equal(200, req.response.status)
    assert.equal("GET", seen.method)
    assert.equal("/p%20x?a=1&b=2&a=3", seen.uri)
    assert.equal("/p%20x", seen.path)
    assert.equal("a=1&b=2&a=3", seen.query)
    assert.equal("HTTP/1.0", seen.version)
    assert.equal("example.com:8080", seen.headers["host"])
    assert.equal("example.com:8080", seen.headers["HOST"])
    assert.same({ "1", "2" }, seen.headers:get_list("X-Dup"))
    assert.equal("", seen.body)
    assert.equal("10.0.0.9", seen.remote_ip)
    assert.equal("example.com:8080", seen.host)
    assert.equal("example.com", seen.host_name)
    assert.equal("http", seen.protocol)
    assert.same({ a = { "1", "3" }, b = { "2" } }, seen.query_arguments)
    assert.same({ a = { "1", "3" }, b = { "2" } }, seen.arguments)
    assert.same({}, seen.body_arguments)
    assert.same({}, seen.files)
    assert.equal("http://example.com:8080/p%20x?a=1&b=2&a=3", seen:full_url())
    assert.matches("HTTPServerRequest%(", tostring(seen))
  end)

  it("builds fields only when they are read", function()
    local H = handler({ get = function(self) seen = self.request; self:write("x") end })
    local req = fetch(app_with(H), "GET", "/", { headers = { Host = "h" } })
    for _, k in ipairs({ "headers", "uri", "body", "remote_ip", "arguments", "host", "cookies" }) do
      assert.is_nil(rawget(seen, k), k)
    end
    assert.equal("h", seen.host)
    assert.truthy(rawget(seen, "headers"))
    local n = #req.calls
    local _, _ = seen.headers, seen.host
    assert.equal(n, #req.calls) -- built once
  end)

  it("trusts X-Real-Ip / X-Forwarded-For / X-Scheme only with xheaders", function()
    local headers = { ["X-Forwarded-For"] = "1.2.3.4, 5.6.7.8", ["X-Scheme"] = "https" }
    fetch(app_with(Capture), "GET", "/", { headers = headers })
    assert.equal("127.0.0.1", seen.remote_ip)
    assert.equal("http", seen.protocol)

    local app = app_with(Capture, { xheaders = true })
    fetch(app, "GET", "/", { headers = headers })
    assert.equal("5.6.7.8", seen.remote_ip)
    assert.equal("https", seen.protocol)

    fetch(app, "GET", "/", { headers = { ["X-Real-Ip"] = "2001:db8::1", ["X-Forwarded-For"] = "9.9.9.9" } })
    assert.equal("2001:db8::1", seen.remote_ip)

    fetch(app, "GET", "/", { headers = { ["X-Real-Ip"] = "<script>", ["X-Forwarded-Proto"] = "gopher" } })
    assert.equal("127.0.0.1", seen.remote_ip)
    assert.equal("http", seen.protocol)

    fetch(app, "GET", "/", { headers = { ["X-Forwarded-Proto"] = "http, https" } })
    assert.equal("https", seen.protocol)

    local trusted = app_with(Capture, { xheaders = true, trusted_downstream = { "5.6.7.8" } })
    fetch(trusted, "GET", "/", { headers = { ["X-Forwarded-For"] = "1.2.3.4, 5.6.7.8" } })
    assert.equal("1.2.3.4", seen.remote_ip)
  end)

  it("parses urlencoded bodies and merges them with the query", function()
    fetch(app_with(Capture), "POST", "/?a=q", {
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "a=b1&c=%20d+e",
    })
    assert.same({ a = { "b1" }, c = { " d e" } }, seen.body_arguments)
    assert.same({ a = { "q", "b1" }, c = { " d e" } }, seen.arguments)
    assert.same({ a = { "q" } }, seen.query_arguments)
  end)

  it("parses multipart bodies into arguments and files", function()
    local body = table.concat({
      "--XyZ",
      'Content-Disposition: form-data; name="title"',
      "",
      "hello",
      "--XyZ",
      'Content-Disposition: form-data; name="up"; filename="a.txt"',
      "Content-Type: text/plain",
      "",
      "file body",
      "--XyZ--",
      "",
    }, "\r\n")
    fetch(app_with(Capture), "POST", "/", {
      headers = { ["Content-Type"] = "multipart/form-data; boundary=XyZ" }, body = body,
    })
    assert.same({ title = { "hello" } }, seen.body_arguments)
    assert.same({ up = { { filename = "a.txt", content_type = "text/plain", body = "file body" } } },
                seen.files)
  end)

  it("answers 400 to a malformed multipart body", function()
    seen = nil
    local req = fetch(app_with(Capture), "POST", "/", {
      headers = { ["Content-Type"] = "multipart/form-data; boundary=XyZ" }, body = "--XyZ\r\nbroken",
    })
    assert.equal(400, req.response.status)
    assert.is_nil(seen)
    req = fetch(app_with(Capture), "PUT", "/", {
      headers = { ["Content-Type"] = "multipart/form-data" }, body = "x",
    })
    assert.equal(400, req.response.status)
  end)

  it("ignores bodies of other content types", function()
    local req = fetch(app_with(Capture), "POST", "/", {
      headers = { ["Content-Type"] = "application/json" }, body = '{"a":1}',
    })
    assert.equal(200, req.response.status)
    assert.equal('{"a":1}', seen.body)
    assert.same({}, seen.body_arguments)
  end)
end)

describe("request:on_close", function()
  before_each(fake.clear_logs)

  -- An asynchronous handler that keeps its request open; -> the app and a
  -- table that will hold the handler.
  local function pending(methods)
    local seen = {}
    methods = methods or {}
    methods.get = web.asynchronous(function(self) seen.handler = self end)
    return app_with(handler(methods)), seen
  end

  it("runs its listeners once, in order and with their arguments, when the response finishes", function()
    local calls = {}
    local H = handler({
      get = function(self)
        self.request:on_close(function(...) calls[#calls + 1] = { "first", ... } end, 1, nil, 3)
        self.request:on_close(function(...) calls[#calls + 1] = { "second", select("#", ...) } end)
        assert.same({}, calls)
        self:write("ok")
      end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal("ok", req.response.body)
    assert.same({ { "first", 1, nil, 3 }, { "second", 0 } }, calls)
    fake.close(req)
    assert.equal(2, #calls)
  end)

  it("runs them when the client goes away first, after on_connection_close", function()
    local order = {}
    local app, seen = pending({
      on_connection_close = function() order[#order + 1] = "on_connection_close" end,
    })
    local req = fetch(app, "GET", "/")
    local request = seen.handler.request
    request:on_close(function() order[#order + 1] = "listener" end)
    assert.is_nil(request.connection_closed)
    fake.close(req)
    assert.same({ "on_connection_close", "listener" }, order)
    assert.is_true(request.connection_closed)
    -- finishing afterwards does not run them again
    seen.handler:finish()
    assert.same({ "on_connection_close", "listener" }, order)
  end)

  it("runs a listener added once the request is over at once", function()
    local app, seen = pending()
    fetch(app, "GET", "/")
    seen.handler:finish("done")
    local ran = 0
    seen.handler.request:on_close(function(n) ran = ran + n end, 5)
    assert.equal(5, ran)
  end)

  it("logs an error in a listener and still runs the others", function()
    local ran = false
    local H = handler({
      get = function(self)
        self.request:on_close(function() error("listener failed") end)
        self.request:on_close(function() ran = true end)
        self:write("fine")
      end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(200, req.response.status)
    assert.equal("fine", req.response.body)
    assert.is_true(ran)
    assert.truthy(fake.find_log("error", "listener failed"))
  end)

  it("waits for the verb that detached the connection to return", function()
    local events = {}
    local H = handler({
      get = function(self)
        self.request:on_close(function() events[#events + 1] = "closed" end)
        local stream = assert(self:detach())
        stream:write("HTTP/1.1 101 Switching Protocols\r\n\r\n")
        events[#events + 1] = "session"
      end,
      on_finish = function() events[#events + 1] = "on_finish" end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.same({ "session", "closed" }, events)
    assert.is_nil(req.response)
    assert.same({ "HTTP/1.1 101 Switching Protocols\r\n\r\n" }, req.stream.written)
    -- the core no longer reports on a detached request
    fake.close(req)
    assert.same({ "session", "closed" }, events)
  end)

  -- self.request is made on first read: one read only once the request is
  -- over is over too.
  it("made after its client left, says so and runs a listener at once", function()
    local closed = 0
    local app, seen = pending({ on_connection_close = function() closed = closed + 1 end })
    local req = fetch(app, "GET", "/?a=1")
    assert.is_nil(rawget(seen.handler, "request"))
    fake.close(req)
    assert.equal(1, closed)
    local request = seen.handler.request
    assert.is_true(request.connection_closed)
    assert.equal("/", request.path)
    assert.equal("a=1", request.query)
    local ran = 0
    request:on_close(function() ran = ran + 1 end)
    assert.equal(1, ran)
  end)

  it("made after the response finished, is over", function()
    local app, seen = pending()
    fetch(app, "GET", "/")
    seen.handler:finish("done")
    assert.is_nil(rawget(seen.handler, "request"))
    local request = seen.handler.request
    assert.equal("GET", request.method)
    assert.is_nil(request.connection_closed)
    local ran = 0
    request:on_close(function() ran = ran + 1 end)
    assert.equal(1, ran)
  end)

  -- The requests the close hook can report are kept by handle only while
  -- they can be: one over (in its first run or later) is left to the GC.
  it("keeps no request once it is over", function()
    local app, seen = pending()
    local kept = setmetatable({}, { __mode = "k" })
    fetch(app, "GET", "/")
    kept[seen.handler.request] = true
    seen.handler:finish("later")
    seen.handler = nil
    -- the handle of a request over in its first run
    kept[fetch(app_with(handler({ get = function(self) self:write("now") end })), "GET", "/")] = true
    -- the request made last is remembered until the next one: make one
    fetch(app_with(handler({})), "GET", "/")
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(kept))
  end)

  it("refuses what is not a function", function()
    local H = handler({ get = function(self) self.request:on_close("x") end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(500, req.response.status)
    assert.truthy(fake.find_log("error", "bad argument #1 to 'on_close'"))
  end)
end)
