-- gust.httpclient against gust's own server in-process (testing.serve) and
-- against small raw servers (TCPServer) that answer exactly what a case
-- needs: interim responses, bodies delimited by the close, malformed
-- answers, stale keep-alive connections, silence.
local core = require "gust.core"
local httpclient = require "gust.httpclient"
local netutil = require "gust.netutil"
local tcpserver = require "gust.tcpserver"
local testing = require "gust.testing"
local web = require "gust.web"

local AsyncHTTPClient = httpclient.AsyncHTTPClient

------------------------------------------------------------------------------
-- The gust app the client talks to.

local Echo = web.RequestHandler:extend()
local function echo(self)
  self:set_header("X-Method", self.request.method)
  self:write(self.request.method .. " " .. self.request.body)
end
Echo.get, Echo.post, Echo.put, Echo.delete, Echo.patch = echo, echo, echo, echo, echo
function Echo:head() self:set_header("Content-Length", "42") end

local Headers = web.RequestHandler:extend()
function Headers:get()
  local h = self.request.headers
  self:write({
    host = h["Host"], ua = h["User-Agent"], ae = h["Accept-Encoding"],
    auth = h["Authorization"], x = h["X-A"], multi = h:get_list("X-Multi"),
    ctype = h["Content-Type"],
  })
end
Headers.post = Headers.get

local Chunked = web.RequestHandler:extend()
function Chunked:get()
  for i = 1, 3 do
    self:write(("chunk%d;"):format(i))
    self:flush()
    core.sleep(0.05)
  end
end

local Big = web.RequestHandler:extend()
function Big:get()
  self:set_header("Content-Type", "text/plain")
  self:write(("0123456789abcdef"):rep(tonumber(self:get_argument("n", "1000"))))
end

local Slow = web.RequestHandler:extend()
function Slow:get()
  core.sleep(tonumber(self:get_argument("t", "1")))
  self:write("slow")
end

local concurrent, max_concurrent = 0, 0
local Counted = web.RequestHandler:extend()
function Counted:get()
  concurrent = concurrent + 1
  if concurrent > max_concurrent then max_concurrent = concurrent end
  core.sleep(0.1)
  concurrent = concurrent - 1
  self:write(self:get_argument("i"))
end

local Redirect = web.RequestHandler:extend()
function Redirect:get(code)
  self:set_status(tonumber(code))
  self:set_header("Location", self:get_argument("to", "/echo"))
end
Redirect.post, Redirect.put, Redirect.head = Redirect.get, Redirect.get, Redirect.get

local Loop = web.RequestHandler:extend()
function Loop:get() self:redirect("/loop") end

local Relative = web.RequestHandler:extend()
function Relative:get() self:redirect("../echo?from=rel") end

local Status = web.RequestHandler:extend()
function Status:get(code)
  self:set_status(tonumber(code))
  if tonumber(code) >= 200 and code ~= "204" and code ~= "304" then self:write("status " .. code) end
end

local app = web.Application({
  {"/echo", Echo},
  {"/headers", Headers},
  {"/chunked", Chunked},
  {"/big", Big},
  {"/slow", Slow},
  {"/counted", Counted},
  {"/redirect/(%d+)", Redirect},
  {"/loop", Loop},
  {"/a/b/relative", Relative},
  {"/status/(%d+)", Status},
})
local gzip_app = web.Application({ {"/big", Big} }, { compress_response = true })

local base, listener, gzip_base

-- A raw HTTP server: `answer(stream, request_head, nconn)` per request.
local function raw_server(answer)
  local S = tcpserver.TCPServer:extend()
  local state = { conns = 0 }
  function S.handle_stream(_, stream)
    state.conns = state.conns + 1
    local n = state.conns
    while true do
      local head = stream:read_until("\r\n\r\n")
      if not head then break end
      local len = tonumber(head:lower():match("content%-length:%s*(%d+)"))
      if len and len > 0 then stream:read_bytes(len) end
      if answer(stream, head, n) == "stop" then break end
    end
  end
  local srv = S()
  state.port = srv:listen(0, "127.0.0.1")
  state.url = "http://127.0.0.1:" .. state.port
  state.srv = srv
  return state
end

local function free_port()
  local socks = assert(netutil.bind_sockets(0, "127.0.0.1"))
  local port = socks[1]:getsockname()[2]
  socks[1]:close()
  return port
end

describe("gust.httpclient", function()
  setup(function()
    base, listener = testing.serve(app)
    gzip_base = testing.serve(gzip_app)
  end)

  describe("methods", function()
    it("does GET, POST, PUT, DELETE and PATCH with bodies", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        local r = assert(client:fetch(base .. "/echo"))
        assert.equal(200, r.code)
        assert.equal("OK", r.reason)
        assert.equal("GET ", r.body)
        for _, m in ipairs({ "POST", "PUT", "DELETE", "PATCH" }) do
          r = assert(client:fetch(base .. "/echo", { method = m, body = "data-" .. m }))
          assert.equal(200, r.code)
          assert.equal(m .. " data-" .. m, r.body)
          assert.equal(m, r.headers["X-Method"])
        end
        r = assert(client:fetch(base .. "/echo", { method = "post" })) -- no body: Content-Length: 0
        assert.equal("POST ", r.body)
      end)
    end)

    it("does HEAD: headers, no body even with a Content-Length", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        local r = assert(client:fetch(base .. "/echo", { method = "HEAD" }))
        assert.equal(200, r.code)
        assert.equal("42", r.headers["Content-Length"])
        assert.equal("", r.body)
        -- the connection is still good for the next request
        r = assert(client:fetch(base .. "/echo"))
        assert.equal("GET ", r.body)
      end)
    end)

    it("refuses a body on GET and header injection, at the call", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        assert.has_error(function() client:fetch(base .. "/echo", { body = "x" }) end)
        assert.has_error(function()
          client:fetch(base .. "/echo", { headers = { ["X-A"] = "1\r\nX-B: 2" } })
        end)
        assert.has_error(function() client:fetch(base .. "/echo", { method = "GE T" }) end)
        assert.has_error(function() client:fetch(42) end)
      end)
    end)
  end)

  describe("headers", function()
    it("sends Host, User-Agent, Accept-Encoding, custom and repeated headers", function()
      testing.run(function()
        local r = assert(AsyncHTTPClient():fetch(base .. "/headers", {
          headers = { ["X-A"] = "1", ["X-Multi"] = { "a", "b" } },
          user_agent = "spec/1",
        }))
        local j = require("cjson").decode(r.body)
        assert.equal(base:match("//(.*)"), j.host)
        assert.equal("spec/1", j.ua)
        assert.equal("gzip", j.ae)
        assert.equal("1", j.x)
        assert.same({ "a", "b" }, j.multi)
      end)
    end)

    it("sends Basic auth from auth_username/auth_password and from the URL", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        local r = assert(client:fetch(base .. "/headers", { auth_username = "Aladdin", auth_password = "open sesame" }))
        assert.equal("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", require("cjson").decode(r.body).auth)
        r = assert(client:fetch(base:gsub("//", "//Aladdin:open%%20sesame@") .. "/headers"))
        assert.equal("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", require("cjson").decode(r.body).auth)
      end)
    end)

    it("gives case-insensitive response headers", function()
      testing.run(function()
        local r = assert(AsyncHTTPClient():fetch(base .. "/echo"))
        assert.equal(r.headers["content-type"], r.headers["Content-Type"])
        assert.matches("^text/html", r.headers["CONTENT-TYPE"])
      end)
    end)

    it("calls header_callback with each line, as Tornado", function()
      testing.run(function()
        local lines = {}
        local r = assert(AsyncHTTPClient():fetch(base .. "/echo", {
          header_callback = function(line) lines[#lines + 1] = line end,
        }))
        assert.equal(200, r.code)
        assert.equal("HTTP/1.1 200 OK\r\n", lines[1])
        assert.equal("\r\n", lines[#lines])
        local found = false
        for _, l in ipairs(lines) do
          if l == "X-Method: GET\r\n" then found = true end
        end
        assert.is_true(found)
      end)
    end)
  end)

  describe("bodies", function()
    it("reads a chunked response", function()
      testing.run(function()
        local r = assert(AsyncHTTPClient():fetch(base .. "/chunked"))
        assert.equal("chunked", r.headers["Transfer-Encoding"])
        assert.equal("chunk1;chunk2;chunk3;", r.body)
      end)
    end)

    it("decompresses gzip, or leaves it when decompress_response is false", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        local want = ("0123456789abcdef"):rep(1000)
        local r = assert(client:fetch(gzip_base .. "/big"))
        assert.equal(want, r.body)
        assert.is_nil(r.headers["Content-Encoding"])
        assert.equal("gzip", r.headers["X-Consumed-Content-Encoding"])
        -- without decompression no Accept-Encoding is sent (as Tornado), so ask
        r = assert(client:fetch(gzip_base .. "/big", {
          decompress_response = false, headers = { ["Accept-Encoding"] = "gzip" },
        }))
        assert.equal("gzip", r.headers["Content-Encoding"])
        assert.is_true(#r.body < #want)
        assert.equal("\31\139", r.body:sub(1, 2))
      end)
    end)

    it("streams the body to streaming_callback in pieces", function()
      testing.run(function()
        local chunks = {}
        local r = assert(AsyncHTTPClient():fetch(base .. "/chunked", {
          streaming_callback = function(data) chunks[#chunks + 1] = data end,
        }))
        assert.equal(200, r.code)
        assert.equal("", r.body)
        assert.is_true(#chunks >= 2, "got " .. #chunks .. " chunk(s)")
        assert.equal("chunk1;chunk2;chunk3;", table.concat(chunks))
      end)
    end)

    it("streams a large body without keeping it", function()
      testing.run(function()
        local n = 0
        local r = assert(AsyncHTTPClient():fetch(base .. "/big?n=200000", {
          streaming_callback = function(data) n = n + #data end,
        }))
        assert.equal(200, r.code)
        assert.equal(16 * 200000, n)
      end)
    end)

    it("fails a body over max_body_size, by Content-Length or as it arrives", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        local r, err = client:fetch(base .. "/big?n=100", { max_body_size = 1000 })
        assert.is_nil(r)
        assert.equal("body larger than max_body_size", err)
        r, err = client:fetch(base .. "/chunked", { max_body_size = 10 })
        assert.is_nil(r)
        assert.equal("body larger than max_body_size", err)
        -- decoded size counts too (a gzip bomb)
        r, err = client:fetch(gzip_base .. "/big?n=1000", { max_body_size = 8000 })
        assert.is_nil(r)
        assert.equal("body larger than max_body_size", err)
        -- and the client goes on working
        assert.equal(200, assert(client:fetch(base .. "/echo")).code)
      end)
    end)
  end)

  describe("status codes", function()
    it("returns >= 400 responses with resp.error set", function()
      testing.run(function()
        local r = assert(AsyncHTTPClient():fetch(base .. "/status/404"))
        assert.equal(404, r.code)
        assert.equal(404, r.error.code)
        assert.equal("HTTP 404: Not Found", tostring(r.error))
        assert.has_error(function() r:rethrow() end)
        r = assert(AsyncHTTPClient():fetch(base .. "/status/500"))
        assert.equal(500, r.code)
        assert.is_nil(assert(AsyncHTTPClient():fetch(base .. "/status/201")).error)
      end)
    end)

    it("reads 204 and 304 without a body and reuses the connection", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        for _, code in ipairs({ 204, 304, 204 }) do
          local r = assert(client:fetch(base .. "/status/" .. code))
          assert.equal(code, r.code)
          assert.equal("", r.body)
        end
      end)
    end)
  end)

  describe("redirects", function()
    local function fetch(path, opts) return AsyncHTTPClient():fetch(base .. path, opts) end

    it("follows 301, 302, 303, 307 and 308 for GET", function()
      testing.run(function()
        for _, code in ipairs({ 301, 302, 303, 307, 308 }) do
          local r = assert(fetch("/redirect/" .. code))
          assert.equal(200, r.code)
          assert.equal("GET ", r.body)
          assert.equal(base .. "/echo", r.effective_url)
        end
      end)
    end)

    it("turns POST into GET on 301/302/303 and keeps it on 307/308", function()
      testing.run(function()
        for _, code in ipairs({ 301, 302, 303 }) do
          local r = assert(fetch("/redirect/" .. code, { method = "POST", body = "b" }))
          assert.equal("GET ", r.body, "after " .. code)
        end
        for _, code in ipairs({ 307, 308 }) do
          local r = assert(fetch("/redirect/" .. code, { method = "POST", body = "b" }))
          assert.equal("POST b", r.body, "after " .. code)
        end
        -- 303 turns PUT into GET too; 302 keeps PUT
        assert.equal("GET ", assert(fetch("/redirect/303", { method = "PUT", body = "p" })).body)
        assert.equal("PUT p", assert(fetch("/redirect/302", { method = "PUT", body = "p" })).body)
      end)
    end)

    it("drops the body headers when a redirect turns into GET", function()
      testing.run(function()
        local r = assert(fetch("/redirect/303?to=/headers", {
          method = "POST", body = "x", headers = { ["Content-Type"] = "text/plain" },
        }))
        assert.is_nil(require("cjson").decode(r.body).ctype)
      end)
    end)

    it("resolves a relative Location", function()
      testing.run(function()
        local r = assert(fetch("/a/b/relative"))
        assert.equal(base .. "/a/echo?from=rel", r.effective_url)
        assert.equal(404, r.code)
      end)
    end)

    it("stops a loop with 'too many redirects' and honours max_redirects", function()
      testing.run(function()
        local r, err = fetch("/loop")
        assert.is_nil(r)
        assert.equal("too many redirects", err)
        r, err = fetch("/redirect/302?to=/redirect/302", { max_redirects = 1 })
        assert.is_nil(r)
        assert.equal("too many redirects", err)
      end)
    end)

    it("returns the 3xx itself with follow_redirects = false", function()
      testing.run(function()
        local r = assert(fetch("/redirect/302", { follow_redirects = false }))
        assert.equal(302, r.code)
        assert.equal("/echo", r.headers["Location"])
        assert.is_nil(r.error)
      end)
    end)
  end)

  describe("errors", function()
    it("reports a refused connection", function()
      testing.run(function()
        local r, err = AsyncHTTPClient():fetch("http://127.0.0.1:" .. free_port() .. "/")
        assert.is_nil(r)
        assert.equal("connection refused", err)
      end)
    end)

    it("reports an unknown host", function()
      testing.run(function()
        local r, err = AsyncHTTPClient():fetch("http://no-such-host.invalid/", { connect_timeout = 10 })
        assert.is_nil(r)
        assert.matches("^dns: no%-such%-host%.invalid: ", err)
      end, 15)
    end)

    it("times out on a server that accepts and never answers", function()
      testing.run(function()
        local socks = assert(netutil.bind_sockets(0, "127.0.0.1"))
        local port = socks[1]:getsockname()[2]
        local t0 = core.now()
        local r, err = AsyncHTTPClient():fetch("http://127.0.0.1:" .. port .. "/", { request_timeout = 0.3 })
        assert.is_nil(r)
        assert.equal("timeout", err)
        assert.is_true(core.now() - t0 < 1)
        socks[1]:close()
      end)
    end)

    it("times out a slow handler, and the client recovers", function()
      testing.run(function()
        local client = AsyncHTTPClient()
        local r, err = client:fetch(base .. "/slow?t=1", { request_timeout = 0.2 })
        assert.is_nil(r)
        assert.equal("timeout", err)
        assert.equal("slow", assert(client:fetch(base .. "/slow?t=0.01")).body)
      end)
    end)

    it("reports a malformed response", function()
      testing.run(function()
        local srv = raw_server(function(stream)
          stream:write("HTTP/1.1 abc\r\n\r\n")
          return "stop"
        end)
        local r, err = AsyncHTTPClient():fetch(srv.url .. "/")
        assert.is_nil(r)
        assert.matches("^malformed response: ", err)
        srv.srv:stop()
      end)
    end)

    it("reports a close before the response is complete", function()
      testing.run(function()
        local srv = raw_server(function(stream)
          stream:write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
          stream:close()
          return "stop"
        end)
        local r, err = AsyncHTTPClient():fetch(srv.url .. "/")
        assert.is_nil(r)
        assert.equal("connection closed before the response was complete", err)
        srv.srv:stop()
      end)
    end)

    it("rejects unsupported schemes and bad URLs with nil, err", function()
      testing.run(function()
        local r, err = AsyncHTTPClient():fetch("ftp://example.com/")
        assert.is_nil(r)
        assert.equal("unsupported url scheme: ftp", err)
        r, err = AsyncHTTPClient():fetch("not a url")
        assert.is_nil(r)
        assert.matches("^invalid url", err)
      end)
    end)
  end)

  describe("wire details", function()
    it("skips 1xx interim responses", function()
      testing.run(function()
        local srv = raw_server(function(stream)
          stream:write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" ..
                       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok")
        end)
        local r = assert(AsyncHTTPClient():fetch(srv.url .. "/"))
        assert.equal(200, r.code)
        assert.equal("ok", r.body)
        assert.equal("1", r.headers["X-Final"])
        assert.is_nil(r.headers["Link"])
        srv.srv:stop()
      end)
    end)

    it("reads a body delimited by the close (HTTP/1.0 and 1.1)", function()
      testing.run(function()
        for _, version in ipairs({ "1.0", "1.1" }) do
          local srv = raw_server(function(stream)
            stream:write("HTTP/" .. version .. " 200 OK\r\n\r\nuntil ")
            core.sleep(0.02)
            stream:write("close")
            stream:close()
            return "stop"
          end)
          local r = assert(AsyncHTTPClient():fetch(srv.url .. "/"))
          assert.equal("until close", r.body)
          srv.srv:stop()
        end
      end)
    end)

    it("ignores a Content-Length on 304 and HEAD answers", function()
      testing.run(function()
        local srv = raw_server(function(stream, head)
          if head:find("^HEAD") then
            stream:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
          elseif head:find("^GET /304") then
            stream:write("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
          else
            stream:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
          end
        end)
        local client = AsyncHTTPClient()
        assert.equal("", assert(client:fetch(srv.url .. "/", { method = "HEAD" })).body)
        assert.equal(304, assert(client:fetch(srv.url .. "/304")).code)
        assert.equal("hello", assert(client:fetch(srv.url .. "/")).body)
        assert.equal(1, srv.conns)
        srv.srv:stop()
      end)
    end)

    it("reuses one connection for sequential fetches", function()
      testing.run(function()
        local srv = raw_server(function(stream)
          stream:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        end)
        local client = AsyncHTTPClient()
        for _ = 1, 20 do assert.equal("ok", assert(client:fetch(srv.url .. "/")).body) end
        assert.equal(1, srv.conns)
        srv.srv:stop()
      end)
    end)

    it("does not reuse a connection the server asked to close", function()
      testing.run(function()
        local srv = raw_server(function(stream)
          stream:write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        end)
        local client = AsyncHTTPClient()
        for _ = 1, 3 do assert.equal("ok", assert(client:fetch(srv.url .. "/")).body) end
        assert.equal(3, srv.conns)
        srv.srv:stop()
      end)
    end)

    it("retries an idempotent request once when a reused connection was dropped", function()
      testing.run(function()
        -- Answers the first request on each connection; closes on the second
        -- without a byte (a server that timed out the idle connection).
        local served = {}
        local srv = raw_server(function(stream, _, n)
          if served[n] then stream:close() return "stop" end
          served[n] = true
          stream:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        end)
        local client = AsyncHTTPClient()
        assert.equal("ok", assert(client:fetch(srv.url .. "/")).body)
        assert.equal("ok", assert(client:fetch(srv.url .. "/")).body) -- retried
        assert.equal(2, srv.conns)
        -- POST is not retried
        local r, err = client:fetch(srv.url .. "/", { method = "POST", body = "x" })
        assert.is_nil(r)
        assert.matches("^connection closed", err)
        srv.srv:stop()
      end)
    end)

    it("evicts a pooled connection when the peer closes it", function()
      testing.run(function()
        local srv = raw_server(function(stream)
          stream:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
          core.sleep(0.05)
          stream:close()
          return "stop"
        end)
        core.http_close_idle()
        assert.equal("ok", assert(AsyncHTTPClient():fetch(srv.url .. "/")).body)
        assert.equal(1, core.http_pool_idle())
        core.sleep(0.2)
        assert.equal(0, core.http_pool_idle())
        srv.srv:stop()
      end)
    end)

    it("closes idle connections after idle_timeout", function()
      testing.run(function()
        core.http_close_idle()
        local client = AsyncHTTPClient({ idle_timeout = 0.1 })
        assert.equal(200, assert(client:fetch(base .. "/echo")).code)
        assert.equal(1, core.http_pool_idle())
        core.sleep(0.3)
        assert.equal(0, core.http_pool_idle())
      end)
    end)
  end)

  describe("concurrency", function()
    it("queues beyond max_clients, in order", function()
      testing.run(function()
        concurrent, max_concurrent = 0, 0
        local client = AsyncHTTPClient({ max_clients = 2 })
        local order, done = {}, 0
        for i = 1, 6 do
          client:fetch(base .. "/counted?i=" .. i, function(r, err)
            assert(r, err)
            order[#order + 1] = tonumber(r.body)
            done = done + 1
          end)
        end
        while done < 6 do core.sleep(0.02) end
        assert.equal(2, max_concurrent)
        assert.equal(1, order[1] < 3 and 1 or 0)
        assert.same({ 5, 6 }, { math.min(order[5], order[6]), math.max(order[5], order[6]) })
      end)
    end)

    it("runs many fetches concurrently without leaking pooled connections", function()
      testing.run(function()
        core.http_close_idle()
        local client = AsyncHTTPClient({ max_clients = 20 })
        local done = 0
        for _ = 1, 200 do
          client:fetch(base .. "/echo", function(r) if r and r.code == 200 then done = done + 1 end end)
        end
        while done < 200 do core.sleep(0.02) end
        assert.is_true(core.http_pool_idle() <= 20)
      end, 20)
    end)
  end)

  describe("calling styles", function()
    it("calls back with (resp, err) in a task", function()
      testing.run(function()
        local got, gerr, finished = nil, nil, false
        local ret = AsyncHTTPClient():fetch(base .. "/echo", function(r, err)
          got, gerr, finished = r, err, true
        end)
        assert.is_nil(ret)
        while not finished do core.sleep(0.01) end
        assert.equal(200, got.code)
        assert.is_nil(gerr)
        AsyncHTTPClient():fetch("http://127.0.0.1:" .. free_port() .. "/", nil, function(r, err)
          got, gerr, finished = r, err, "refused"
        end)
        while finished ~= "refused" do core.sleep(0.01) end
        assert.is_nil(got)
        assert.equal("connection refused", gerr)
      end)
    end)

    it("takes an HTTPRequest", function()
      testing.run(function()
        local req = httpclient.HTTPRequest(base .. "/echo", { method = "PUT", body = "r" })
        local r = assert(AsyncHTTPClient():fetch(req))
        assert.equal("PUT r", r.body)
        assert.is_true(r.request_time >= 0)
      end)
    end)

    it("must be called from a task without a callback", function()
      assert.has_error(function() AsyncHTTPClient():fetch(base .. "/echo") end)
    end)

    it("raises a streaming_callback's error after closing the exchange", function()
      testing.run(function()
        local ok, err = pcall(function()
          AsyncHTTPClient():fetch(base .. "/chunked", {
            streaming_callback = function() error("boom") end,
          })
        end)
        assert.is_false(ok)
        assert.matches("boom", err)
        -- the max_clients unit came back
        assert.equal(10, AsyncHTTPClient()._sem:value())
      end)
    end)
  end)

  describe("testing.fetch", function()
    it("serves an app and fetches from it, outside a task", function()
      local r = assert(testing.fetch(app, "/echo", { method = "POST", body = "tf" }))
      assert.equal("POST tf", r.body)
    end)

    it("works inside a task too", function()
      testing.run(function()
        local r = assert(testing.fetch(app, "/status/404"))
        assert.equal(404, r.code)
      end)
    end)
  end)

  describe("URLs", function()
    it("parses hosts, ports, IPv6 literals, userinfo and targets", function()
      local u = httpclient._parse_url("https://User:pw@Example.COM:8443/p?q=1#frag")
      assert.equal("example.com", u.host)
      assert.equal(8443, u.port)
      assert.is_true(u.tls)
      assert.equal("/p?q=1", u.target)
      assert.equal("User:pw", u.userinfo)
      assert.equal("Example.COM:8443", u.host_header)
      u = httpclient._parse_url("http://[::1]:8080?x")
      assert.equal("::1", u.host)
      assert.equal("/?x", u.target)
      assert.equal("[::1]:8080", u.host_header)
      assert.equal(80, httpclient._parse_url("http://h").port)
    end)

    it("joins relative references", function()
      local j = httpclient._urljoin
      assert.equal("http://h/x", j("http://h/a/b", "/x"))
      assert.equal("http://h/a/x", j("http://h/a/b", "x"))
      assert.equal("http://h/x", j("http://h/a/b", "../x"))
      assert.equal("http://h/a/b?y", j("http://h/a/b?q", "?y"))
      assert.equal("https://o/p", j("http://h/a", "https://o/p"))
      assert.equal("http://o/p", j("http://h/a", "//o/p"))
    end)
  end)

  teardown(function()
    listener:close()
  end)
end)
