-- gust.web.security: cookies, signed cookies, XSRF protection and the
-- authenticated decorator -- the RequestHandler methods that deal in
-- secrets. gust.web.handler mixes `methods` into RequestHandler; nothing
-- here is called except through a handler.
--
-- Cookies set during a request are kept in the handler's _new_cookies
-- ({name, Set-Cookie value} in order, one per name) until the headers go
-- out (cookie_headers), so a second set_cookie() replaces the first.

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, error, pairs, rawget = type, tostring, tonumber, error,
  pairs, rawget
local byte, char, find, format, gsub, match, sub = string.byte, string.char, string.find,
  string.format, string.gsub, string.match, string.sub
local concat = table.concat
local floor = math.floor
local bxor = require("bit").bxor

local core = require "gust.core"
local escape = require "gust.escape"
local httputil = require "gust.httputil"
local errors = require "gust.web.errors"

local HTTPError = errors.HTTPError
local url_escape, xhtml_escape = escape.url_escape, escape.xhtml_escape

local function copy(t)
  local out = {}
  if t then for k, v in pairs(t) do out[k] = v end end
  return out
end

local function now()
  return floor(core.time())
end

local methods = {}
_M.methods = methods

-- Cookies ---------------------------------------------------------------------

function methods:get_cookie(name, default)
  local v = self.request.cookies[name]
  if v == nil then return default end
  return v
end

-- opts: expires_days, expires, max_age, path ("/"), domain, secure,
-- httponly, samesite (httputil.format_cookie checks name and value).
function methods:set_cookie(name, value, opts)
  if self._headers_written then error("Cannot set_cookie() after headers have been written", 2) end
  if type(value) ~= "string" then value = tostring(value) end
  local s = httputil.format_cookie(name, value, opts)
  local cookies = rawget(self, "_new_cookies")
  if cookies == nil then
    cookies = {}
    self._new_cookies = cookies
  end
  for i = 1, #cookies do
    if cookies[i][1] == name then
      cookies[i][2] = s
      return
    end
  end
  cookies[#cookies + 1] = { name, s }
end

-- Expires in the past and Max-Age=0; path and domain must match the ones
-- the cookie was set with.
function methods:clear_cookie(name, opts)
  local o = copy(opts)
  o.expires_days = nil
  o.expires = now() - 365 * 86400
  o.max_age = 0
  self:set_cookie(name, "", o)
end

function methods:clear_all_cookies(opts)
  for name in pairs(self.request.cookies) do self:clear_cookie(name, opts) end
end

function methods:create_signed_value(name, value)
  local secret = self:require_setting("cookie_secret", "secure cookies")
  return httputil.create_signed_value(secret, name, tostring(value), core.hmac_sha256, now())
end

-- opts as set_cookie; expires_days defaults to 30.
function methods:set_secure_cookie(name, value, opts)
  if opts == nil or (opts.expires_days == nil and opts.expires == nil and opts.max_age == nil) then
    opts = copy(opts)
    opts.expires_days = 30
  end
  self:set_cookie(name, self:create_signed_value(name, value), opts)
end

-- The value if the cookie (or `value`, when given) carries a valid
-- signature for `name` that is at most max_age_days (31) old, else nil.
function methods:get_secure_cookie(name, value, max_age_days)
  local secret = self:require_setting("cookie_secret", "secure cookies")
  if value == nil then value = self:get_cookie(name) end
  if value == nil then return nil end
  return httputil.decode_signed_value(secret, name, value, max_age_days or 31,
                                      core.hmac_sha256, now())
end

-- XSRF ------------------------------------------------------------------------
-- Tornado's version-2 tokens: "2|<mask hex>|<masked token hex>|<timestamp>".
-- The 16-byte token is masked with 4 fresh random bytes each time it is
-- rendered, so it never appears the same twice in a page (BREACH).

local function xor_mask(mask, data)
  local out = {}
  for i = 1, #data do
    out[i] = char(bxor(byte(data, i), byte(mask, (i - 1) % 4 + 1)))
  end
  return concat(out)
end

local HEX_PAIR = {}
for b = 0, 255 do
  local c = char(b)
  HEX_PAIR[format("%02x", b)], HEX_PAIR[format("%02X", b)] = c, c
end

local function hex_decode(s)
  if #s % 2 == 1 or find(s, "%X") then return nil end
  return (gsub(s, "%x%x", HEX_PAIR))
end

-- -> version, token, timestamp; nil for anything unreadable.
local function decode_xsrf_token(s)
  if type(s) ~= "string" then return nil end
  if sub(s, 1, 2) == "2|" then
    local mask_hex, masked_hex, ts = match(s, "^2|(%x+)|(%x*)|(%d+)$")
    if not mask_hex then return nil end
    local mask, masked = hex_decode(mask_hex), hex_decode(masked_hex)
    if not mask or #mask ~= 4 or not masked then return nil end
    return 2, xor_mask(mask, masked), tonumber(ts)
  elseif find(s, "^%d+|") then
    return nil -- a version this code does not know
  end
  -- Version 1: the bare token, hex-encoded or as is.
  return 1, hex_decode(s) or s, now()
end

-- The unmasked token from the _xsrf cookie, or a new random one.
function methods:_get_raw_xsrf_token()
  local raw = rawget(self, "_raw_xsrf_token")
  if raw == nil then
    local version, token, timestamp
    local cookie = self:get_cookie(self.settings.xsrf_cookie_name or "_xsrf")
    if cookie then version, token, timestamp = decode_xsrf_token(cookie) end
    if token == nil then
      version, token, timestamp = nil, core.random_bytes(16), now()
    end
    raw = { version, token, timestamp }
    self._raw_xsrf_token = raw
  end
  return raw[1], raw[2], raw[3]
end

-- The token to embed in forms; sets the _xsrf cookie when the request had
-- none.
function methods:xsrf_token()
  local t = rawget(self, "_xsrf_token")
  if t then return t end
  local version, token, timestamp = self:_get_raw_xsrf_token()
  local mask = core.random_bytes(4)
  t = "2|" .. core.hex(mask) .. "|" .. core.hex(xor_mask(mask, token)) .. "|" .. tostring(timestamp)
  if version == nil then
    local opts = copy(self.settings.xsrf_cookie_kwargs)
    if opts.expires_days == nil and opts.expires == nil and self.current_user then
      opts.expires_days = 30
    end
    self:set_cookie(self.settings.xsrf_cookie_name or "_xsrf", t, opts)
  end
  self._xsrf_token = t
  return t
end

function methods:xsrf_form_html()
  return '<input type="hidden" name="_xsrf" value="' .. xhtml_escape(self:xsrf_token()) .. '"/>'
end

function methods:check_xsrf_cookie()
  local token = self:get_argument("_xsrf", nil)
  if not token then
    local h = self.request.headers
    token = h["X-Xsrftoken"] or h["X-Csrftoken"]
  end
  if not token then error(HTTPError(403, "'_xsrf' argument missing from POST"), 0) end
  local _, got = decode_xsrf_token(token)
  local _, expected = self:_get_raw_xsrf_token()
  if not got then error(HTTPError(403, "'_xsrf' argument has invalid format"), 0) end
  if not httputil.constant_time_compare(got, expected) then
    error(HTTPError(403, "XSRF cookie does not match POST argument"), 0)
  end
end

-- Adds a Set-Cookie header per cookie set so far (the headers are about to
-- go out).
function _M.add_cookie_headers(handler)
  local cookies = rawget(handler, "_new_cookies")
  if cookies == nil then return end
  for i = 1, #cookies do handler:add_header("Set-Cookie", cookies[i][2]) end
end

-- Decorator: without a current_user, GET/HEAD go to
-- settings.login_url?next=<uri> when it is set; anything else is a 403.
function _M.authenticated(method)
  if type(method) ~= "function" then
    error("bad argument #1 to 'authenticated' (function expected, got " .. type(method) .. ")", 2)
  end
  return function(self, ...)
    if not self.current_user then
      local m = self.request.method
      local url = self:get_login_url()
      if url and (m == "GET" or m == "HEAD") then
        if not find(url, "?", 1, true) then
          local next_url
          if find(url, "^%a[%w+.-]*:") then
            next_url = self.request:full_url()
          else
            next_url = self.request.uri
          end
          url = url .. "?next=" .. url_escape(next_url)
        end
        self:redirect(url)
        return
      end
      error(HTTPError(403), 0)
    end
    return method(self, ...)
  end
end

return _M
