-- gust.web.security: cookies, signed cookies, XSRF, authenticated.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local fake, web, fetch, handler, app_with = helpers.fake, helpers.web, helpers.fetch, helpers.handler, helpers.app_with

describe("cookies", function()
  before_each(fake.clear_logs)

  it("reads cookies with a default", function()
    local got = {}
    local H = handler({ get = function(self)
      got = { self:get_cookie("a"), self:get_cookie("b"), self:get_cookie("zz", "dflt") }
    end })
    fetch(app_with(H), "GET", "/", { headers = { Cookie = 'a=1; b="quoted"' } })
    assert.same({ "1", "quoted", "dflt" }, got)
  end)

  it("sets, replaces and clears cookies", function()
    local H = handler({ get = function(self)
      self:set_cookie("a", "1")
      self:set_cookie("a", "2", { path = "/x", httponly = true, secure = true, samesite = "Lax" })
      self:set_cookie("n", 5, { expires_days = 1 })
      self:clear_cookie("old", { path = "/p" })
    end })
    local req = fetch(app_with(H), "GET", "/")
    local set = req.response.headers["Set-Cookie"]
    assert.equal(3, #set)
    assert.equal("a=2; Path=/x; Secure; HttpOnly; SameSite=Lax", set[1])
    assert.matches("^n=5; Expires=.* GMT; Path=/$", set[2])
    assert.matches("^old=; Expires=.*; Max%-Age=0; Path=/p$", set[3])
  end)

  it("refuses bad cookie values", function()
    local H = handler({ get = function(self) self:set_cookie("a", "x;y") end })
    assert.equal(500, fetch(app_with(H), "GET", "/").response.status)
  end)

  it("keeps cookies on an error page, as Tornado does", function()
    local H = handler({ get = function(self) self:set_cookie("k", "v") error(web.HTTPError(404)) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(404, req.response.status)
    assert.equal("k=v; Path=/", req.response.headers["Set-Cookie"])
  end)

  describe("secure cookies", function()
    local H = handler({
      get = function(self)
        local v = self:get_secure_cookie("user", nil, tonumber(self:get_argument("days", "31")))
        self:write(tostring(v))
      end,
      post = function(self) self:set_secure_cookie("user", "alice|admin") end,
    })
    local app = app_with(H, { cookie_secret = "s3cret" })

    it("round-trip, and a tampered or foreign value reads as nil", function()
      local req = fetch(app, "POST", "/")
      local cookie = fake.cookies_from(req)
      assert.matches("^user=2|1:0|10:%d+|4:user|", cookie)
      assert.matches("Expires=", req.response.headers["Set-Cookie"])
      assert.equal("alice|admin", fetch(app, "GET", "/", { headers = { Cookie = cookie } }):body_text())

      local tampered = cookie:gsub("|4:user|(%d+):(.)", function(n, c)
        return "|4:user|" .. n .. ":" .. (c == "Y" and "Z" or "Y")
      end)
      assert.not_equal(cookie, tampered)
      assert.equal("nil", fetch(app, "GET", "/", { headers = { Cookie = tampered } }):body_text())

      local other = app_with(H, { cookie_secret = "another" })
      assert.equal("nil", fetch(other, "GET", "/", { headers = { Cookie = cookie } }):body_text())
      assert.equal("nil", fetch(app, "GET", "/"):body_text())
      assert.equal("nil", fetch(app, "GET", "/", { headers = { Cookie = "user=garbage" } }):body_text())
    end)

    it("expire after max_age_days", function()
      local cookie = fake.cookies_from(fetch(app, "POST", "/"))
      local saved = fake.clock
      fake.clock = fake.clock + 3 * 86400
      local ok, err = pcall(function()
        assert.equal("nil", fetch(app, "GET", "/?days=2", { headers = { Cookie = cookie } }):body_text())
        local req = fetch(app, "GET", "/?days=4", { headers = { Cookie = cookie } })
        assert.equal("alice|admin", req:body_text())
      end)
      fake.clock = saved
      assert(ok, err)
    end)

    it("need settings.cookie_secret", function()
      local req = fetch(app_with(H), "POST", "/")
      assert.equal(500, req.response.status)
      assert.truthy(fake.find_log("error", "You must define the 'cookie_secret' setting"))
    end)
  end)
end)

describe("xsrf", function()
  local Form = handler({
    get = function(self) self:write(self:xsrf_form_html()) end,
    post = function(self) self:write("posted") end,
    delete = function(self) self:write("deleted") end,
  })
  local app = app_with(Form, { xsrf_cookies = true })

  local function token_and_cookie()
    local req = fetch(app, "GET", "/")
    local token = req.response.body:match('value="([^"]+)"')
    return token, fake.cookies_from(req)
  end

  it("renders a hidden field and sets the _xsrf cookie", function()
    local req = fetch(app, "GET", "/")
    assert.matches('^<input type="hidden" name="_xsrf" value="2|%x+|%x+|%d+"/>$', req.response.body)
    assert.matches("^_xsrf=2|", req.response.headers["Set-Cookie"])
  end)

  it("answers 403 to a POST without a token", function()
    local _, cookie = token_and_cookie()
    local req = fetch(app, "POST", "/", { headers = { Cookie = cookie } })
    assert.equal(403, req.response.status)
    assert.equal(403, fetch(app, "DELETE", "/").response.status)
  end)

  it("accepts a token matching the cookie, in a form or a header", function()
    local token, cookie = token_and_cookie()
    local req = fetch(app, "POST", "/", {
      headers = { Cookie = cookie, ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "_xsrf=" .. token,
    })
    assert.equal(200, req.response.status)
    assert.equal("posted", req.response.body)
    req = fetch(app, "DELETE", "/", { headers = { Cookie = cookie, ["X-Xsrftoken"] = token } })
    assert.equal("deleted", req.response.body)
    -- the cookie value itself, and a fresh masking of the same token, work too
    local cookie_value = cookie:match("_xsrf=(.*)")
    req = fetch(app, "POST", "/?_xsrf=" .. cookie_value, { headers = { Cookie = cookie } })
    assert.equal(200, req.response.status)
  end)

  it("answers 403 to a token that does not match the cookie", function()
    local token = token_and_cookie()
    local _, other_cookie = token_and_cookie()
    local req = fetch(app, "POST", "/?_xsrf=" .. token, { headers = { Cookie = other_cookie } })
    assert.equal(403, req.response.status)
    req = fetch(app, "POST", "/?_xsrf=" .. token)
    assert.equal(403, req.response.status)
    req = fetch(app, "POST", "/?_xsrf=2|zz|zz|1", { headers = { Cookie = other_cookie } })
    assert.equal(403, req.response.status)
  end)

  it("does not check GET, HEAD or OPTIONS, nor when xsrf_cookies is off", function()
    local H = handler({ options = function(self) self:write("o") end,
                        post = function(self) self:write("p") end })
    local on = app_with(H, { xsrf_cookies = true })
    assert.equal(200, fetch(on, "OPTIONS", "/").response.status)
    assert.equal(200, fetch(app_with(H), "POST", "/").response.status)
  end)

  it("is a method any handler can call", function()
    local H = handler({ get = function(self) self:check_xsrf_cookie() end })
    assert.equal(403, fetch(app_with(H), "GET", "/").response.status)
  end)
end)

describe("current_user and authenticated", function()
  local calls = 0
  local Secret = handler({
    get_current_user = function(self)
      calls = calls + 1
      return self:get_cookie("user")
    end,
    get = web.authenticated(function(self)
      local _ = self.current_user
      self:write("hi " .. self.current_user)
    end),
    post = web.authenticated(function(self) self:write("posted") end),
  })

  before_each(function() calls = 0 end)

  it("computes current_user lazily, once", function()
    local app = app_with(Secret)
    local req = fetch(app, "GET", "/", { headers = { Cookie = "user=bob" } })
    assert.equal("hi bob", req.response.body)
    assert.equal(1, calls)
    local Plain = handler({ get_current_user = function() calls = calls + 1 end,
                            get = function(self) self:write("x") end })
    fetch(app_with(Plain), "GET", "/")
    assert.equal(1, calls) -- not asked for, not computed
  end)

  it("caches a nil user too", function()
    local seen = {}
    local H = handler({
      get_current_user = function() calls = calls + 1 end,
      get = function(self) seen = { self.current_user, self.current_user } end,
    })
    fetch(app_with(H), "GET", "/")
    assert.equal(1, calls)
    assert.same({}, seen)
  end)

  it("may be set explicitly, in prepare for instance", function()
    local H = handler({
      prepare = function(self) self.current_user = "preset" end,
      get = web.authenticated(function(self) self:write(self.current_user) end),
    })
    assert.equal("preset", fetch(app_with(H), "GET", "/"):body_text())
  end)

  it("redirects GET to login_url?next=<uri> when there is no user", function()
    local app = app_with(Secret, { login_url = "/login" }, "/secret")
    local req = fetch(app, "GET", "/secret?a=1")
    assert.equal(302, req.response.status)
    assert.equal("/login?next=%2Fsecret%3Fa%3D1", req.response.headers["Location"])
    req = fetch(app, "HEAD", "/secret")
    assert.equal(405, req.response.status) -- Secret defines no head
    assert.equal(403, fetch(app, "POST", "/secret").response.status)
  end)

  it("uses the full URL for an absolute login_url and keeps one with a query", function()
    local app = app_with(Secret, { login_url = "https://auth.example/login" }, "/s")
    local req = fetch(app, "GET", "/s", { headers = { Host = "app.example" } })
    assert.equal("https://auth.example/login?next=http%3A%2F%2Fapp.example%2Fs",
                 req.response.headers["Location"])
    app = app_with(Secret, { login_url = "/login?x=1" }, "/s")
    assert.equal("/login?x=1", fetch(app, "GET", "/s").response.headers["Location"])
  end)

  it("answers 403 without login_url", function()
    assert.equal(403, fetch(app_with(Secret), "GET", "/").response.status)
  end)
end)
