-- gust.pubsub within one process (no master: local fan-out only).
local core = require "gust.core"
local pubsub = require "gust.pubsub"
local testing = require "gust.testing"

describe("gust.pubsub", function()
  it("delivers to every subscriber of the channel, each as a task", function()
    testing.run(function()
      local got = {}
      local a = pubsub.subscribe("c1", function(m, ch) got[#got + 1] = "a:" .. ch .. ":" .. m end)
      local b = pubsub.subscribe("c1", function(m) core.sleep(0.01) got[#got + 1] = "b:" .. m end)
      local other = pubsub.subscribe("c2", function(m) got[#got + 1] = "other:" .. m end)
      assert.is_true(pubsub.publish("c1", "hi"))
      assert.same({}, got) -- returns at once; delivery is on the loop
      core.sleep(0.05)
      assert.same({"a:c1:hi", "b:hi"}, got)
      a:cancel(); b:cancel(); other:cancel()
      assert.equal(0, pubsub.subscribers("c1"))
    end)
  end)

  it("stops delivering after cancel, and cancel is idempotent", function()
    testing.run(function()
      local n = 0
      local sub = pubsub.subscribe("c3", function() n = n + 1 end)
      pubsub.publish("c3", "x")
      core.sleep(0.01)
      sub:cancel()
      sub:cancel()
      pubsub.publish("c3", "y")
      core.sleep(0.01)
      assert.equal(1, n)
    end)
  end)

  it("rejects misuse and oversize messages", function()
    assert.has_error(function() pubsub.subscribe(1, function() end) end)
    assert.has_error(function() pubsub.subscribe("c", "nope") end)
    assert.has_error(function() pubsub.publish("c", {}) end)
    local ok, err = pubsub.publish("c", ("x"):rep(70 * 1024))
    assert.is_nil(ok)
    assert.equal("message too large", err)
  end)
end)
