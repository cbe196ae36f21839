-- gust.redis under plain luajit, against a redis-server of the spec's own
-- on a free loopback port (stopped in teardown).
local redis = require "gust.redis"
local testing = require "gust.testing"
local cjson = require "cjson"

local port, dir

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

setup(function()
  port = tonumber(sh([[python3 -c 'import socket; s=socket.socket(); ]] ..
                     [[s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']]))
  dir = sh("mktemp -d"):gsub("%s+$", "")
  assert(os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
                     .. "--dir %s --daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log")
                    :format(port, dir, dir, dir)) == 0)
  for _ = 1, 200 do
    if sh(("redis-cli -p %d ping 2>/dev/null"):format(port)):match("PONG") then return end
    os.execute("sleep 0.02")
  end
  error("redis-server did not start")
end)

teardown(function()
  if dir then
    os.execute(("kill $(cat %s/redis.pid) 2>/dev/null; rm -rf %s"):format(dir, dir))
  end
end)

describe("gust.redis", function()
  it("converts each kind of reply", function()
    testing.run(function()
      local r = assert(redis.connect({ port = port, db = 1 }))
      assert.equal("OK", r:set("s", "v"))
      assert.equal("v", r:get("s"))
      assert.equal(redis.null, r:get("missing"))
      assert.equal(cjson.null, redis.null)
      r:del("n", "l")
      assert.equal(5, r:incrby("n", 5))
      assert.equal(2, r:rpush("l", "a", 1))
      assert.same({ "a", "1" }, r:lrange("l", 0, -1))
      local v, err = r:lpush("s", "x")
      assert.is_nil(v)
      assert.matches("^WRONGTYPE ", err)
      assert.same({ "OK", "v", { false, err } },
                  r:pipeline(function(p) p:set("s", "v") p:get("s") p:lpush("s", "x") end))
      r:close()
      assert.same({ nil, "closed" }, { r:get("s") })
    end)
  end)

  it("pools connections per address", function()
    testing.run(function()
      local r = assert(redis.connect("redis://127.0.0.1:" .. port .. "/1"))
      local id = r:client("id")
      r:close()
      local pooled = redis._pooled()
      assert.is_true(pooled >= 1)
      local r2 = assert(redis.connect("redis://127.0.0.1:" .. port .. "/1"))
      assert.equal(id, r2:client("id"))
      assert.equal(pooled - 1, redis._pooled())
      r2:multi()
      r2:close() -- a transaction is open: not pooled
      assert.equal(pooled - 1, redis._pooled())
    end)
  end)

  it("refuses misuse and reports bad URLs and refused connections", function()
    assert.has_error(function() redis.connect({ port = "x" }) end)
    assert.has_error(function() redis.connect({ nope = 1 }) end)
    testing.run(function()
      local r, err = redis.connect("http://x")
      assert.is_nil(r)
      assert.matches("^invalid redis URL", err)
      local r2 = assert(redis.connect({ port = port }))
      assert.has_error(function() r2:set("k", {}) end)
      assert.has_error(function() r2:pipeline(function(p) p:set("k", true) end) end)
      r2:close()
    end)
  end)
end)
