-- gust.web.static: StaticFileHandler.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local fake, web, fetch = helpers.fake, helpers.web, helpers.fetch
local handler, app_with, html_page = helpers.handler, helpers.app_with, helpers.html_page
local httputil = require "gust.httputil"

describe("StaticFileHandler", function()
  local lfs = require "lfs"
  local root, content, mtime

  local function write_file(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
  end

  setup(function()
    root = os.tmpname()
    os.remove(root)
    assert(lfs.mkdir(root))
    assert(lfs.mkdir(root .. "/static"))
    assert(lfs.mkdir(root .. "/static/sub"))
    content = "Hello static"
    write_file(root .. "/static/hello.txt", content)
    write_file(root .. "/static/sub/index.html", "<h1>index</h1>")
    write_file(root .. "/static/app.js", "var x = 1;")
    write_file(root .. "/secret.txt", "secret")
    mtime = lfs.attributes(root .. "/static/hello.txt").modification
  end)

  teardown(function()
    os.remove(root .. "/static/hello.txt")
    os.remove(root .. "/static/sub/index.html")
    os.remove(root .. "/static/app.js")
    os.remove(root .. "/static/sub")
    os.remove(root .. "/static")
    os.remove(root .. "/secret.txt")
    os.remove(root)
  end)

  local function app(kwargs, settings)
    kwargs = kwargs or {}
    kwargs.path = kwargs.path or (root .. "/static")
    return web.Application({ { "/s/(.*)", web.StaticFileHandler, kwargs } }, settings)
  end

  it("sends a file with send_file and the right headers", function()
    local req = fetch(app(), "GET", "/s/hello.txt")
    local r = req.response
    assert.equal(200, r.status)
    assert.same({ path = root .. "/static/hello.txt", offset = 0, length = #content }, r.file)
    assert.equal("text/plain", r.headers["Content-Type"])
    assert.equal("bytes", r.headers["Accept-Ranges"])
    assert.equal(string.format('"%x-%x"', #content, mtime), r.headers["Etag"])
    assert.equal(httputil.format_http_date(mtime), r.headers["Last-Modified"])
    assert.is_nil(r.headers["Cache-Control"])
    assert.equal("application/javascript", fetch(app(), "GET", "/s/app.js").response.headers["Content-Type"])
  end)

  it("serves HEAD the same way (the core drops the body)", function()
    local req = fetch(app(), "HEAD", "/s/hello.txt")
    assert.equal(200, req.response.status)
    assert.equal(#content, req.response.file.length)
  end)

  it("never serves outside its root", function()
    local a = app()
    for _, uri in ipairs({
      "/s/../secret.txt", "/s/%2e%2e/secret.txt", "/s/sub/../../secret.txt",
      "/s/..", "/s//etc/passwd", "/s/%2Fetc%2Fpasswd", "/s/hello.txt%00.png",
    }) do
      local req = fetch(a, "GET", uri)
      assert.equal(403, req.response.status, uri)
      assert.is_nil(req.response.file, uri)
    end
    -- "." segments are harmless
    assert.equal(200, fetch(a, "GET", "/s/./sub/./index.html").response.status)
  end)

  describe("with symlinks", function()
    local links = { "dirlink", "filelink", "inlink", "sublink" }

    setup(function()
      assert(lfs.link("..", root .. "/static/dirlink", true))
      assert(lfs.link("../secret.txt", root .. "/static/filelink", true))
      assert(lfs.link("hello.txt", root .. "/static/inlink", true))
      assert(lfs.link("sub", root .. "/static/sublink", true))
    end)

    teardown(function()
      for _, l in ipairs(links) do os.remove(root .. "/static/" .. l) end
    end)

    it("refuses one that leads out of the root", function()
      local a = app()
      for _, uri in ipairs({ "/s/dirlink/secret.txt", "/s/filelink", "/s/dirlink/" }) do
        local req = fetch(a, "GET", uri)
        assert.equal(403, req.response.status, uri)
        assert.is_nil(req.response.file, uri)
      end
    end)

    it("follows one that stays inside", function()
      local a = app()
      local r = fetch(a, "GET", "/s/inlink").response
      assert.equal(200, r.status)
      assert.equal(root .. "/static/inlink", r.file.path)
      r = fetch(a, "GET", "/s/sublink/index.html").response
      assert.equal(200, r.status)
    end)

    it("follows any with settings.static_follow_symlinks", function()
      local r = fetch(app(nil, { static_follow_symlinks = true }), "GET", "/s/dirlink/secret.txt").response
      assert.equal(200, r.status)
      assert.equal(200, fetch(app(nil, { static_follow_symlinks = true }), "GET", "/s/filelink")
                          .response.status)
    end)

    it("resolves the root too, when the root itself is a link", function()
      local linked_root = root .. "/rootlink"
      assert(lfs.link("static", linked_root, true))
      local a = app({ path = linked_root })
      assert.equal(200, fetch(a, "GET", "/s/hello.txt").response.status)
      assert.equal(200, fetch(a, "GET", "/s/inlink").response.status)
      assert.equal(403, fetch(a, "GET", "/s/dirlink/secret.txt").response.status)
      os.remove(linked_root)
    end)
  end)

  it("answers 404 for a missing file and 403 for a directory", function()
    assert.equal(404, fetch(app(), "GET", "/s/nope.txt").response.status)
    assert.equal(403, fetch(app(), "GET", "/s/sub").response.status)
  end)

  it("serves default_filename for directories, redirecting to the slash form", function()
    local a = app({ default_filename = "index.html" })
    local req = fetch(a, "GET", "/s/sub")
    assert.equal(301, req.response.status)
    assert.equal("/s/sub/", req.response.headers["Location"])
    req = fetch(a, "GET", "/s/sub/")
    assert.equal(200, req.response.status)
    assert.equal(root .. "/static/sub/index.html", req.response.file.path)
    assert.equal("text/html", req.response.headers["Content-Type"])
  end)

  it("answers single ranges with 206 and Content-Range", function()
    local function range(h)
      return fetch(app(), "GET", "/s/hello.txt", { headers = { Range = h } }).response
    end
    local r = range("bytes=0-4")
    assert.equal(206, r.status)
    assert.equal("bytes 0-4/12", r.headers["Content-Range"])
    assert.same({ offset = 0, length = 5 }, { offset = r.file.offset, length = r.file.length })
    r = range("bytes=6-")
    assert.equal(206, r.status)
    assert.equal("bytes 6-11/12", r.headers["Content-Range"])
    assert.equal(6, r.file.offset)
    assert.equal(6, r.file.length)
    r = range("bytes=-3")
    assert.equal(206, r.status)
    assert.equal("bytes 9-11/12", r.headers["Content-Range"])
    assert.equal(9, r.file.offset)
    assert.equal(3, r.file.length)
    r = range("bytes=5-100")
    assert.equal(206, r.status)
    assert.equal("bytes 5-11/12", r.headers["Content-Range"])
    assert.equal(7, r.file.length)
    r = range("bytes=-100")
    assert.equal(200, r.status) -- the whole file
    assert.equal(12, r.file.length)
    r = range("bytes=0-")
    assert.equal(200, r.status)
    r = range("bytes=0-1,4-5")
    assert.equal(200, r.status) -- several ranges: the whole file
    r = range("items=0-1")
    assert.equal(200, r.status)
  end)

  it("answers 416 to an unsatisfiable range", function()
    for _, h in ipairs({ "bytes=12-", "bytes=50-60", "bytes=-0", "bytes=5-3" }) do
      local r = fetch(app(), "GET", "/s/hello.txt", { headers = { Range = h } }).response
      assert.equal(416, r.status, h)
      assert.equal("bytes */12", r.headers["Content-Range"], h)
      assert.is_nil(r.file, h)
    end
  end)

  it("answers 304 to a matching If-None-Match", function()
    local etag = fetch(app(), "GET", "/s/hello.txt").response.headers["Etag"]
    for _, inm in ipairs({ etag, "W/" .. etag, '"other", ' .. etag, "*" }) do
      local r = fetch(app(), "GET", "/s/hello.txt", { headers = { ["If-None-Match"] = inm } }).response
      assert.equal(304, r.status, inm)
      assert.is_nil(r.file)
      assert.equal("", r.body)
      assert.equal(etag, r.headers["Etag"])
      assert.is_nil(r.headers["Content-Type"])
    end
    local r = fetch(app(), "GET", "/s/hello.txt", { headers = { ["If-None-Match"] = '"nope"' } }).response
    assert.equal(200, r.status)
    -- If-None-Match wins over If-Modified-Since
    r = fetch(app(), "GET", "/s/hello.txt", { headers = {
      ["If-None-Match"] = '"nope"', ["If-Modified-Since"] = httputil.format_http_date(mtime) } }).response
    assert.equal(200, r.status)
  end)

  it("answers 304 when not modified since", function()
    local function ims(t)
      return fetch(app(), "GET", "/s/hello.txt",
                   { headers = { ["If-Modified-Since"] = httputil.format_http_date(t) } }).response.status
    end
    assert.equal(304, ims(mtime))
    assert.equal(304, ims(mtime + 60))
    assert.equal(200, ims(mtime - 60))
    local r = fetch(app(), "GET", "/s/hello.txt", { headers = { ["If-Modified-Since"] = "garbage" } })
    assert.equal(200, r.response.status)
  end)

  it("is routed by settings.static_path, and static_url adds a cached version", function()
    local urls = {}
    local H = handler({ get = function(self)
      urls = { self:static_url("hello.txt"), self:static_url("hello.txt"),
               self:static_url("missing.txt"), self:static_url("hello.txt", true) }
    end })
    local a = web.Application({ { "/", H } }, { static_path = root .. "/static" })
    local req = fetch(a, "GET", "/static/hello.txt")
    assert.equal(200, req.response.status)
    assert.equal(root .. "/static/hello.txt", req.response.file.path)
    fetch(a, "GET", "/", { headers = { Host = "h:1" } })
    local v = fake.core.hex(fake.core.sha1(content)):sub(1, 8)
    assert.equal("/static/hello.txt?v=" .. v, urls[1])
    assert.equal(urls[1], urls[2])
    assert.equal("/static/missing.txt", urls[3])
    assert.equal("http://h:1/static/hello.txt?v=" .. v, urls[4])
    -- versioned URLs are cacheable for a long time
    req = fetch(a, "GET", "/static/hello.txt?v=" .. v)
    assert.equal("max-age=" .. 86400 * 365 * 10, req.response.headers["Cache-Control"])
    assert.truthy(req.response.headers["Expires"])
  end)

  it("honours static_url_prefix", function()
    local a = web.Application({}, { static_path = root .. "/static", static_url_prefix = "/assets-1.0/" })
    assert.equal(200, fetch(a, "GET", "/assets-1.0/hello.txt").response.status)
    assert.equal(404, fetch(a, "GET", "/assets-1X0/hello.txt").response.status)
  end)

  it("requires static_path for static_url", function()
    fake.clear_logs()
    local H = handler({ get = function(self) self:static_url("x") end })
    assert.equal(500, fetch(app_with(H), "GET", "/").response.status)
    assert.truthy(fake.find_log("error", "static_path"))
  end)

  it("answers 404 when the file goes away before it is sent", function()
    write_file(root .. "/static/brief.txt", "here")
    local Vanishing = web.StaticFileHandler:extend()
    function Vanishing:set_extra_headers()
      self:set_header("X-Extra", "1")
      os.remove(self.absolute_path)
    end
    local a = web.Application({ { "/v/(.*)", Vanishing, { path = root .. "/static" } } })
    local req = fetch(a, "GET", "/v/brief.txt")
    assert.equal(404, req.response.status)
    assert.is_nil(req.response.headers["X-Extra"])
    assert.equal(html_page(404, "Not Found"), req.response.body)
  end)

  it("resolves a relative root against the working directory", function()
    local lfs_cwd = lfs.currentdir()
    assert(lfs.chdir(root))
    local ok, err = pcall(function()
      local a = web.Application({ { "/r/(.*)", web.StaticFileHandler, { path = "static" } } })
      local req = fetch(a, "GET", "/r/hello.txt")
      assert.equal(root .. "/static/hello.txt", req.response.file.path)
      assert.equal(403, fetch(a, "GET", "/r/../secret.txt").response.status)
    end)
    lfs.chdir(lfs_cwd)
    assert(ok, err)
  end)
end)
