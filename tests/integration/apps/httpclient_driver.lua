-- Drives gust.httpclient from inside the gust binary for test_httpclient.py:
-- each endpoint runs fetches against the URL it is given and answers with a
-- JSON report, so the Python side checks what the client saw.
--
--   /fetch?url=U[&method=&body=&ca_certs=&validate_cert=0&request_timeout=
--          &connect_timeout=&follow_redirects=0&max_redirects=&decompress=0
--          &header=Name:Value&hex=1]          -> {code, reason, headers, body, effective_url} | {err}
--   /loop?url=U&n=N[&close=1]                 -> {ok, errors, first_error}
--   /concurrent?url=U&n=N&max_clients=M       -> {ok, errors, elapsed}
--   /stream?url=U                             -> {chunks, bytes, code, body}
--   /callback?url=U                           -> web.asynchronous + callback style
--   /close_idle                               -> {closed}
--   /pid                                      -> {pid} of the process serving (a worker)
local core = require "gust.core"
local httpclient = require "gust.httpclient"
local web = require "gust.web"

local tonumber = tonumber

local function opts_from(h)
  local o = {
    method = h:get_argument("method", "GET"),
    ca_certs = h:get_argument("ca_certs", nil),
    validate_cert = h:get_argument("validate_cert", "1") == "1",
    request_timeout = tonumber(h:get_argument("request_timeout", "10")),
    connect_timeout = tonumber(h:get_argument("connect_timeout", "10")),
    follow_redirects = h:get_argument("follow_redirects", "1") == "1",
    max_redirects = tonumber(h:get_argument("max_redirects", "5")),
    decompress_response = h:get_argument("decompress", "1") == "1",
  }
  local body = h:get_argument("body", nil)
  if body then o.body = body end
  local headers = {}
  for _, hv in ipairs(h:get_arguments("header")) do
    local k, v = hv:match("^([^:]+):(.*)$")
    headers[k] = v
  end
  o.headers = headers
  return o
end

local function report(resp, hex)
  local headers = {}
  for k, v in resp.headers:pairs() do headers[k] = v end
  local body = resp.body
  if hex then body = core.hex(body) end
  return {
    code = resp.code, reason = resp.reason, headers = headers, body = body,
    effective_url = resp.effective_url, error = resp.error and tostring(resp.error) or nil,
  }
end

local Fetch = web.RequestHandler:extend()
function Fetch:get()
  local resp, err = httpclient.AsyncHTTPClient():fetch(self:get_argument("url"), opts_from(self))
  if not resp then return self:write({ err = err }) end
  self:write(report(resp, self:get_argument("hex", "0") == "1"))
end

local Loop = web.RequestHandler:extend()
function Loop:get()
  local url, n = self:get_argument("url"), tonumber(self:get_argument("n", "100"))
  local opts = opts_from(self)
  if self:get_argument("close", "0") == "1" then opts.headers = { Connection = "close" } end
  local client = httpclient.AsyncHTTPClient()
  local ok, errors, first = 0, 0, nil
  for _ = 1, n do
    local resp, err = client:fetch(url, opts)
    if resp and resp.code == 200 then
      ok = ok + 1
    else
      errors = errors + 1
      first = first or err or resp.code
    end
  end
  self:write({ ok = ok, errors = errors, first_error = first })
end

local Concurrent = web.RequestHandler:extend()
function Concurrent:get()
  local url, n = self:get_argument("url"), tonumber(self:get_argument("n", "10"))
  local client = httpclient.AsyncHTTPClient({ max_clients = tonumber(self:get_argument("max_clients", "10")) })
  local ok, errors, done = 0, 0, 0
  local t0 = core.now()
  local function cb(resp)
    if resp and resp.code == 200 then ok = ok + 1 else errors = errors + 1 end
    done = done + 1
  end
  for _ = 1, n do client:fetch(url, cb) end
  while done < n do core.sleep(0.005) end
  self:write({ ok = ok, errors = errors, elapsed = core.now() - t0 })
end

local Stream = web.RequestHandler:extend()
function Stream:get()
  local chunks, bytes = 0, 0
  local resp, err = httpclient.AsyncHTTPClient():fetch(self:get_argument("url"), {
    streaming_callback = function(data) chunks, bytes = chunks + 1, bytes + #data end,
  })
  if not resp then return self:write({ err = err }) end
  self:write({ chunks = chunks, bytes = bytes, code = resp.code, body = resp.body })
end

-- The seed's classic shape: finish from the fetch's callback.
local Callback = web.RequestHandler:extend()
Callback.get = web.asynchronous(function(self)
  httpclient.AsyncHTTPClient():fetch(self:get_argument("url"), function(resp, err)
    if not resp then
      self:write({ err = err })
    else
      self:write({ code = resp.code, body = resp.body })
    end
    self:finish()
  end)
end)

local CloseIdle = web.RequestHandler:extend()
function CloseIdle:get()
  self:write({ closed = core.http_close_idle() })
end

local Pid = web.RequestHandler:extend()
function Pid:get()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  self:write({ pid = pid })
end

return web.Application({
  {"/pid", Pid},
  {"/fetch", Fetch},
  {"/loop", Loop},
  {"/concurrent", Concurrent},
  {"/stream", Stream},
  {"/callback", Callback},
  {"/close_idle", CloseIdle},
})
